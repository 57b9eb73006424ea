"""Payloads of the identity events on the `apps` topic (developers, apps, API tokens).

Payloads are these dataclasses as JSON (orjson serialises dataclasses field by field); a new
field must have a default, so that older records still decode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

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


MAX_GRACE_S = 30 * 86_400
"""The longest an app's previous secret may keep working after a rotation."""

_GRACE = re.compile(r"^(\d{1,7})([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def grace_seconds(text: str) -> int:
    """A grace period written as seconds or with a unit: `0`, `90`, `90s`, `15m`, `1h`, `7d`."""
    match = _GRACE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 0, 90s, 15m, 1h or 7d")
    seconds = int(match[1]) * _UNIT_S[match[2]]
    if seconds > MAX_GRACE_S:
        raise ValueError(f"{text!r} is longer than the {MAX_GRACE_S // 86_400}-day maximum")
    return seconds


@dataclass(frozen=True, slots=True)
class AppSecretRotated:
    """The app's secret is now the one hashed `secret_hash`; every earlier secret still
    working stops at `previous_expires_at` (microseconds since the epoch), or earlier if an
    earlier rotation said so."""

    name: str
    secret_hash: str
    previous_expires_at: int


@dataclass(frozen=True, slots=True)
class AppPreviousSecretsRevoked:
    """Every secret of the app but the current one stops working now (the event's time)."""

    name: str


@dataclass(frozen=True, slots=True)
class TokenCreated:
    id: str
    developer: str
    name: str
    token_hash: str
    prefix: str
    """The token's first characters, shown in listings so a user can tell tokens apart."""
    expires_at: int | None
    scopes: tuple[str, ...] | None = None
    """What the token may do (SCOPES); None: everything, as every token before scopes."""


@dataclass(frozen=True, slots=True)
class TokenRevoked:
    id: str
    developer: str


Scope = Literal["jobs:read", "jobs:write", "secrets:read", "secrets:write"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
"""What a token can be limited to. A token with scopes may call only the routes that name
one of its scopes; a token without (None) may call every route."""


def parse_scopes(value: object) -> tuple[Scope, ...] | None:
    """A token's scopes from a list or a comma-separated string; raises ValueError naming the
    unknown ones. None (or "*") is a full-access token."""
    if value is None or value == "*":
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError("scopes must be a list of strings or a comma-separated string")
    wanted = [i.strip() for i in items if i.strip()]
    unknown = sorted(set(wanted) - set(SCOPES))
    if unknown or not wanted:
        raise ValueError(
            f"unknown scopes {', '.join(unknown) or '(none given)'}; known: {', '.join(SCOPES)}"
        )
    return tuple(s for s in SCOPES if s in wanted)


TenantKind = Literal["personal", "organisation", "user"]
"""personal: a developer's own; organisation and user: a GitHub account with the GitHub App
installed (schemas/people.py)."""


@dataclass(frozen=True, slots=True)
class TenantCreated:
    """A tenant owns jobs; every developer has a personal one."""

    id: str
    name: str
    kind: TenantKind
    owner: str


@dataclass(frozen=True, slots=True)
class TenantMemberAdded:
    tenant_id: str
    developer: str
    role: Literal["owner", "member"] = "member"


def encode(payload: object) -> bytes:
    return orjson.dumps(payload)
