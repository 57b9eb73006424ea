"""Open the backends the settings name. Drivers are imported here lazily, inside the process
that uses them: chdb above all must never be imported by a process that forks afterwards."""

from __future__ import annotations

from typing import TYPE_CHECKING

from base.settings import Settings, SettingsError, url_path, url_scheme

if TYPE_CHECKING:
    from storage.analytics import Analytics
    from storage.log import EventLog
    from storage.relational import Relational


def open_log(settings: Settings) -> EventLog:
    scheme = url_scheme(settings.log_url)
    if scheme == "sqlite":
        from storage.log.sqlite import SQLiteLog

        return SQLiteLog(url_path(settings.log_url), append_timeout_s=settings.append_timeout_s)
    if scheme == "kafka":
        from storage.log.kafka import KafkaLog

        return KafkaLog.from_url(settings.log_url, append_timeout_s=settings.append_timeout_s)
    raise SettingsError(f"HUTCH_LOG: unsupported scheme {scheme!r} (sqlite or kafka)")


def open_analytics(settings: Settings) -> Analytics:
    scheme = url_scheme(settings.analytics_url)
    if scheme == "chdb":
        from storage.analytics.chdb import ChdbAnalytics

        return ChdbAnalytics(url_path(settings.analytics_url))
    if scheme in ("clickhouse", "clickhouses"):
        from storage.analytics.clickhouse import ClickHouseAnalytics

        return ClickHouseAnalytics.from_url(settings.analytics_url)
    raise SettingsError(f"HUTCH_ANALYTICS: unsupported scheme {scheme!r} (chdb or clickhouse)")


def open_relational(settings: Settings) -> Relational:
    scheme = url_scheme(settings.db_url)
    if scheme == "sqlite":
        from storage.relational.sqlite import SQLiteRelational

        return SQLiteRelational(url_path(settings.db_url))
    if scheme in ("postgresql", "postgres"):
        from storage.relational.postgres import PostgresRelational

        return PostgresRelational(settings.db_url)
    raise SettingsError(f"HUTCH_DB: unsupported scheme {scheme!r} (sqlite or postgresql)")
