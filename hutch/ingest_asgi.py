"""The ASGI entry point gunicorn workers import (after the fork): `hutch.ingest_asgi:app`."""

from base.jsonlogs import configure_logging
from base.settings import Settings
from hutch.apps import ingest_app
from hutch.runtime import Runtime, tune_gc

settings = Settings.from_env()
configure_logging(settings.log_level)
app = ingest_app(Runtime(settings), forward_to=settings.query_url or None)
tune_gc()
