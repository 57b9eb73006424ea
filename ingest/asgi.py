"""The ASGI entry point gunicorn workers import (after the fork): `ingest.asgi:app`."""

from hutch.logs import configure_logging
from hutch.runtime import Runtime, tune_gc
from hutch.settings import Settings
from ingest.app import create_app

settings = Settings.from_env()
configure_logging(settings.log_level)
app = create_app(Runtime(settings), forward_to=settings.query_url or None)
tune_gc()
