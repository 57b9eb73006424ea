"""Payloads of the identity events on the `apps` topic (developers, apps, API tokens).

Payloads are these dataclasses as JSON (orjson serialises dataclasses field by field); a new
field must have a default, so that older records still decode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import orjson

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
"""Developer and app names: lowercase, URL- and path-safe, 1-63 characters."""

TOKEN = re.compile(r"^bh_[0-9a-f]{64}$")
MAX_LIVE_TOKENS = 5

TokenExpiry = Literal["never", "1w", "2w", "1month"]
TOKEN_EXPIRY_DAYS: dict[TokenExpiry, int | None] = {
    "never": None,
    "1w": 7,
    "2w": 14,
    "1month": 30,
}


@dataclass(frozen=True, slots=True)
class DeveloperCreated:
    name: str


@dataclass(frozen=True, slots=True)
class AppCreated:
    name: str
    developer: str
    secret_hash: str
    retention_days: int


@dataclass(frozen=True, slots=True)
class AppRetentionSet:
    name: str
    retention_days: int


@dataclass(frozen=True, slots=True)
class TokenCreated:
    id: str
    developer: str
    name: str
    token_hash: str
    prefix: str
    """The token's first characters, shown in listings so a user can tell tokens apart."""
    expires_at: int | None


@dataclass(frozen=True, slots=True)
class TokenRevoked:
    id: str
    developer: str


def encode(payload: object) -> bytes:
    return orjson.dumps(payload)
