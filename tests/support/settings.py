"""Settings for a test: a data directory of its own, on the embedded backends, or on Kafka and
PostgreSQL (a fresh topic namespace and schema) when HUTCH_TEST_BACKENDS=production."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from base.settings import Settings
from tests.support.services import fresh_postgres_schema, need_service

PRODUCTION = os.environ.get("HUTCH_TEST_BACKENDS", "") == "production"
"""Run every test that builds settings on Kafka and PostgreSQL instead of the embedded log
and relational store (`make test` does a second pass this way when the services are up)."""


def production_env() -> dict[str, str]:
    """Settings for a fresh Kafka topic namespace and a fresh PostgreSQL schema."""
    kafka = need_service("HUTCH_TEST_KAFKA", "Kafka")
    postgres = need_service("HUTCH_TEST_POSTGRES", "PostgreSQL")
    prefix = f"t{uuid.uuid4().hex[:10]}."
    return {
        "HUTCH_LOG": f"{kafka}?prefix={prefix}&partitions=3",
        "HUTCH_DB": fresh_postgres_schema(postgres),
    }


def make_settings(data: Path, **env: str) -> Settings:
    base = {"HUTCH_DATA": str(data), **(production_env() if PRODUCTION else {})}
    return Settings.from_env({**base, **env})
