"""Query-string parameters shared by listings: limits, ISO 8601 times, opaque cursors."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import falcon.asgi
import orjson

from base.client_errors import BadRequest
from schemas.envelope import datetime_to_micros


def limit(req: falcon.asgi.Request, default: int, maximum: int, name: str = "limit") -> int:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer", field=name, code="bad_limit") from None
    if not 1 <= value <= maximum:
        raise BadRequest(
            f"{name} must be between 1 and {maximum}, got {value}", field=name, code="bad_limit"
        )
    return value


def offset(req: falcon.asgi.Request, maximum: int = 1_000_000) -> int:
    raw = req.get_param("offset")
    if raw is None or raw == "":
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest("offset must be an integer", field="offset", code="bad_offset") from None
    if not 0 <= value <= maximum:
        raise BadRequest(
            f"offset must be between 0 and {maximum}", field="offset", code="bad_offset"
        )
    return value


EARLIEST = datetime_to_micros(datetime(1678, 1, 1, tzinfo=UTC))
LATEST = datetime_to_micros(datetime(2262, 1, 1, tzinfo=UTC))
"""The times a query can name: the stores compare times as 64-bit nanoseconds since the epoch
(1677-09-21 to 2262-04-11), and answers write them back as dates; nothing Hutch holds is
outside."""


def time_micros(req: falcon.asgi.Request, name: str) -> int | None:
    """An ISO 8601 time (`2026-11-24T10:00:00Z`; no zone means UTC), as epoch microseconds;
    400 for one that is not, or is outside EARLIEST..LATEST."""
    raw = req.get_param(name)
    if raw is None or raw == "":
        return None
    try:
        micros = datetime_to_micros(datetime.fromisoformat(raw.replace("z", "Z")))
    except ValueError:
        raise BadRequest(
            f"{name} must be an ISO 8601 time such as 2026-11-24T10:00:00Z, got {raw!r}",
            field=name,
            code="bad_date",
        ) from None
    if not EARLIEST <= micros < LATEST:
        raise BadRequest(
            f"{name} must be from 1678-01-01 to 2262-01-01 (UTC), got {raw!r}",
            field=name,
            code="bad_date",
        )
    return micros


def csv(req: falcon.asgi.Request, name: str) -> list[str]:
    raw = req.get_param(name)
    if not raw:
        return []
    return [part.strip() for part in raw.split(",") if part.strip()]


def encode_cursor(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(req: falcon.asgi.Request, shape: tuple[type, ...]) -> list[Any] | None:
    """The position a `cursor` parameter holds, checked against `shape`; 400 if it is not
    one this service issued."""
    raw = req.get_param("cursor")
    if raw is None or raw == "":
        return None
    try:
        value = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        value = None
    if (
        not isinstance(value, list)
        or len(value) != len(shape)
        or not all(
            isinstance(v, t) and not isinstance(v, bool) for v, t in zip(value, shape, strict=True)
        )
    ):
        raise BadRequest(
            "cursor is not valid: pass the `next` value of a previous page unchanged",
            field="cursor",
            code="bad_cursor",
        )
    return value
