"""Machines authenticate with their own tokens: builder workers `Bearer hw_<64 hex>`, CI
provisioners `Bearer hp_<64 hex>`.

Workers build every developer's web apps, so they are the operator's, not a developer's:
their tokens are made with `hutch worker create NAME` (printed once, stored hashed) and a
developer's `bh_` token is refused on the worker API, as a worker token is everywhere else.
Workers call rarely (a claim, a few reports per build), so tokens are looked up every time
and a revoked one stops working at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

import falcon.asgi

from base.client_errors import Forbidden, Unauthorized
from schemas.jobs.events import PROVISIONER_TOKEN
from state import web_builds_reads as q
from state.jobs import reads as jq
from storage.relational import Relational

WORKER_TOKEN_PREFIX = "hw_"  # noqa: S105 (a prefix, not a password)
WORKER_TOKEN = re.compile(r"^hw_[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Worker:
    id: str
    name: str


class WorkerAuth:
    def __init__(self, db: Relational) -> None:
        self._db = db

    async def worker(self, req: falcon.asgi.Request) -> Worker:
        """The worker a bearer token names; 401 when missing, unknown or revoked, 403 for a
        developer token."""
        token_hash = _machine_token(req, "hw_", WORKER_TOKEN, "builder worker", "worker")
        found = await asyncio.to_thread(q.worker_by_hash, self._db, token_hash)
        return Worker(*_live(found, "worker"))


class ProvisionerAuth:
    """Provisioners (`hutch runner`, Builtiful's) take CI jobs: `Bearer hp_<64 hex>` from
    `hutch provisioner create`, looked up on every call, as worker tokens are."""

    def __init__(self, db: Relational) -> None:
        self._db = db

    async def provisioner(self, req: falcon.asgi.Request) -> Worker:
        token_hash = _machine_token(req, "hp_", PROVISIONER_TOKEN, "provisioner", "provisioner")
        found = await asyncio.to_thread(jq.provisioner_by_hash, self._db, token_hash)
        return Worker(*_live(found, "provisioner"))


def _machine_token(
    req: falcon.asgi.Request, prefix: str, pattern: re.Pattern[str], what: str, command: str
) -> str:
    """The hash of the machine token a request carries; 401 when missing or malformed, 403
    for a developer's token."""
    scheme, _, value = (req.get_header("Authorization") or "").partition(" ")
    token = value.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(
            f"a {what} token is required: Authorization: Bearer {prefix}<token> "
            f"(made with `hutch {command} create`)",
            code="missing_token",
        )
    if token.startswith("bh_"):
        raise Forbidden(
            f"developer tokens cannot do this; use a {what} token (`hutch {command} create`)",
            code=f"{command}_token_required",
        )
    if not pattern.match(token):
        raise Unauthorized(
            f"malformed {what} token: expected {prefix} and 64 hex digits", code="invalid_token"
        )
    return hashlib.sha256(token.encode()).hexdigest()


class _Machine(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def revoked_at(self) -> int | None: ...


def _live(found: _Machine | None, what: str) -> tuple[str, str]:
    if found is None:
        raise Unauthorized(f"unknown {what} token", code="invalid_token")
    if found.revoked_at is not None:
        raise Unauthorized(f"this {what} token has been revoked", code="token_revoked")
    return found.id, found.name
