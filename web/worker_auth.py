"""Builder workers authenticate with their own tokens: `Authorization: Bearer hw_<64 hex>`.

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

import falcon.asgi

from base.client_errors import Forbidden, Unauthorized
from state import web_builds_reads as q
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
        scheme, _, value = (req.get_header("Authorization") or "").partition(" ")
        token = value.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "a builder worker token is required: Authorization: Bearer hw_<token> "
                "(made with `hutch worker create`)",
                code="missing_token",
            )
        if token.startswith("bh_"):
            raise Forbidden(
                "developer tokens cannot work the build queue; use a worker token "
                "(`hutch worker create`)",
                code="worker_token_required",
            )
        if not WORKER_TOKEN.match(token):
            raise Unauthorized(
                "malformed worker token: expected hw_ and 64 hex digits", code="invalid_token"
            )
        token_hash = hashlib.sha256(token.encode()).hexdigest()
        found = await asyncio.to_thread(q.worker_by_hash, self._db, token_hash)
        if found is None:
            raise Unauthorized("unknown worker token", code="invalid_token")
        if found.revoked_at is not None:
            raise Unauthorized("this worker token has been revoked", code="token_revoked")
        return Worker(found.id, found.name)
