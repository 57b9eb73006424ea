"""Pure pieces, tested alone: envelope ids and times, settings, parameters, the telemetry
schema and its projection transform."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from base.settings import Settings, SettingsError, url_path
from projections.telemetry import clickhouse_micros, transform
from schemas.envelope import datetime_to_micros, iso_micros, micros_to_datetime, new_envelope, uuid7
from schemas.telemetry import parse_events
from schemas.validation import Invalid
from storage.analytics.params import format_value
from storage.log import Record


def test_uuid7_has_version_variant_time_and_order() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert len(set(ids)) == 5000
    assert ids == sorted(ids)  # monotonic within a process, even within one millisecond
    first = ids[0]
    assert first[14] == "7"
    assert first[19] in "89ab"
    millis = int(first.replace("-", "")[:12], 16)
    assert abs(millis / 1000 - datetime.now(UTC).timestamp()) < 60


def test_times_round_trip_through_micros() -> None:
    moment = datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC)
    micros = datetime_to_micros(moment)
    assert micros_to_datetime(micros) == moment
    assert iso_micros(micros) == "2026-11-24T10:00:00.123Z"
    assert datetime_to_micros(datetime(1970, 1, 1)) == 0  # naive means UTC


def test_clickhouse_micros_pads_seconds_to_ten_digits() -> None:
    assert clickhouse_micros(0) == "0000000000.000000"
    assert clickhouse_micros(1_795_000_000_000_001) == "1795000000.000001"


def test_settings_defaults_follow_the_data_directory() -> None:
    s = Settings.from_env({"HUTCH_DATA": "/srv/hutch"})
    assert s.log_url == "sqlite:////srv/hutch/log.db"
    assert url_path(s.log_url) == Path("/srv/hutch/log.db")
    relative = Settings.from_env({})
    assert url_path(relative.db_url) == Path("./data/hutch.db")
    assert relative.bind == "127.0.0.1:8080"


def test_flags_override_the_environment_and_bad_numbers_are_refused() -> None:
    assert Settings.from_env({"HUTCH_BIND": "0.0.0.0:1"}, bind="127.0.0.1:2").bind == "127.0.0.1:2"
    with pytest.raises(SettingsError):
        Settings.from_env({"HUTCH_WORKERS": "many"})


def test_settings_survive_the_trip_to_a_child_process() -> None:
    s = Settings.from_env({"HUTCH_DATA": "/x", "HUTCH_WORKERS": "3"})
    assert Settings.from_env(s.as_env()) == s


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        ("tab\there\\", "tab\\there\\\\"),
        (["a", "it's"], "['a','it\\'s']"),
        (7, "7"),
        (True, "true"),
        (None, "\\N"),
    ],
)
def test_clickhouse_parameters_are_escaped_text(value: object, text: str) -> None:
    assert format_value(value) == text


def test_telemetry_events_parse_and_default() -> None:
    assert parse_events({"kind": "info"}) == [{"kind": "info", "version": "", "bits": {}}]
    events = parse_events([{"kind": "error", "version": "1", "bits": {"a": 1}, "extra": 2}])
    assert events == [{"kind": "error", "version": "1", "bits": {"a": 1}}]
    with pytest.raises(Invalid) as refused:
        parse_events([{"kind": "info"}, "nope"])
    assert refused.value.field == "[1]"


def test_the_telemetry_transform_is_pure_and_skips_what_it_cannot_read() -> None:
    good = new_envelope(
        "telemetry.event.v1",
        orjson.dumps({"kind": "warning", "version": "2", "bits": {"x": [1]}}),
        key="a",
        app="a",
    )
    bad = new_envelope("telemetry.event.v1", b"{not json", key="a", app="a")
    other = new_envelope("app.created.v1", b"{}", key="a")
    records = [Record("telemetry", 0, i, e) for i, e in enumerate([good, bad, other])]
    rows = transform(records, lambda app: 9)
    assert rows == transform(records, lambda app: 9)
    table = rows["telemetry_events"]
    assert table["id"] == [good.id]
    assert table["kind"] == ["warning"]
    assert orjson.loads(table["bits"][0]) == {"x": [1]}
    assert table["retention_days"] == [9]
    assert transform([], lambda app: 9) == {}
