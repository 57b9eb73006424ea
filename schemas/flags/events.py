"""Payloads of the events on the `flags` topic (key: the app).

- `flag.defined.v1`: a definition was created or replaced; `flag` is its canonical JSON
  (schemas/flags/definitions.py `flag_to_json`), so `parse_flag(payload.flag)` gives it back.
- `flag.deleted.v1`: a definition was removed.
- `flag.evaluations.v1`: one `POST /v1/flags/eval` request's reports, as received
  (schemas/flags/evaluations.py `report_to_json`), and which of the names the app did not define at
  that moment (stale clients).

A new field must have a default, so that older records still decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.flags.definitions import JsonValue


@dataclass(frozen=True, slots=True)
class FlagDefined:
    app: str
    flag: dict[str, JsonValue]
    developer: str
    """Who defined it (audit)."""


@dataclass(frozen=True, slots=True)
class FlagDeleted:
    app: str
    name: str
    developer: str


@dataclass(frozen=True, slots=True)
class FlagEvaluations:
    app: str
    evaluations: list[dict[str, JsonValue]]
    unknown: list[str] = field(default_factory=list)


def encode(payload: object) -> bytes:
    return orjson.dumps(payload)


def decode(payload: bytes) -> dict[str, Any]:
    """The payload's fields; raises ValueError (orjson's error or not an object)."""
    body = orjson.loads(payload)
    if not isinstance(body, dict):
        raise ValueError("payload is not a JSON object")
    return body
