"""Gunicorn settings for the ingest service (`gunicorn -c python:hutch.gunicorn_conf
hutch.ingest_asgi:app`, or `hutch ingest`, which uses the same values).

Workers are uvicorn's ASGI workers (uvloop + httptools), with a deadline on receiving each
request (web/client_timeouts.py). On SIGTERM a worker stops accepting, finishes in-flight
requests, then runs the lifespan shutdown, which flushes the log producer: `graceful_timeout`
bounds that.
"""

from __future__ import annotations

import os
from typing import Any

bind = os.environ.get("HUTCH_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("HUTCH_WORKERS", "2"))
worker_class = "web.client_timeouts.PacedUvicornWorker"
graceful_timeout = 20
timeout = 60
keepalive = 75
backlog = 2048
limit_request_line = 8190
limit_request_fields = 100
accesslog = None
proc_name = "hutch-ingest"
# Gunicorn (25.1+) would otherwise listen on one control socket per user ($XDG_RUNTIME_DIR or
# ~/.gunicorn/gunicorn.ctl): each instance takes it from the one before and removes it when it
# stops. Hutch manages its processes with signals; gunicornc is not used.
control_socket_disable = True


def post_fork(server: Any, worker: Any) -> None:
    """A worker dies with its master: one killed outright must not leave workers holding the
    port and the data directory (hutch/data_lock.py) behind it."""
    from hutch.processes import die_with_parent

    die_with_parent(server.pid)


# Gunicorn's own messages as JSON lines too, like the rest of Hutch's logs.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "base.jsonlogs.JSONFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": os.environ.get("HUTCH_LOG_LEVEL", "INFO"), "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {
            "level": os.environ.get("HUTCH_LOG_LEVEL", "INFO"),
            "handlers": ["stderr"],
            "propagate": False,
        },
        "gunicorn.access": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
    },
}
