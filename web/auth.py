"""Who is calling: app secrets (ingest) and developer bearer tokens (APIs), both cached.

How fresh an answer is; these are the bounds the README states:
- An identity command (create or revoke a token, create an app, rotate or revoke its
  secrets, change its retention) re-reads its caller's token from the relational store
  after catching up with the log, under the command lock (`confirm`, no cache): once
  `DELETE /api/tokens/{id}` has answered, the revoked token can change nothing, in any
  process.
- Everywhere else a lookup is remembered for at most `CREDENTIAL_TTL_S` (1 s). A command
  answers only once the relational store holds its event, so a revoked token, or a secret
  replaced by a rotation without grace, stops working in every process at most 1 s after
  the command answered, and at once in the process that ran it (it drops its cache).
- The end of a replaced secret's grace period travels with its cached entry and is checked
  on every use: the old secret stops working when its grace ends, not up to 1 s later.
- An unknown credential is remembered as unknown for `MISS_TTL_S` (0.5 s).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import falcon.asgi

from base.client_errors import Forbidden, NotFound, Unauthorized
from schemas.envelope import now_micros
from schemas.identity import TOKEN
from state import identity_reads as q
from storage.relational import Relational, Transaction

CREDENTIAL_TTL_S = 1.0
MISS_TTL_S = 0.5
MAX_ENTRIES = 50_000

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Developer:
    name: str
    token_id: str | None = None
    """The bearer token that named this developer; None for the operator at the CLI."""
    scopes: tuple[str, ...] | None = None
    """What that token may do; None: everything."""


def refusal(token: q.Token, now: int) -> Unauthorized | None:
    """Why a token found in the store does not authenticate now, if it does not."""
    if token.revoked_at is not None:
        return Unauthorized("this token has been revoked", code="token_revoked")
    if token.expires_at is not None and token.expires_at <= now:
        return Unauthorized("this token has expired", code="token_expired")
    return None


def confirm(db: Relational | Transaction, caller: Developer) -> None:
    """Raise 401 unless the caller's token is live in `db` now, read without any cache.

    CommandContext call this under their command lock after catching up, so a token revoked by a
    command that has answered is refused here whichever process cached it as live. The
    operator (no token) is not checked. Blocks; call from a thread in async code."""
    if caller.token_id is None:
        return
    token = q.token_by_id(db, caller.token_id)
    if token is None or token.developer != caller.name:
        raise Unauthorized("unknown token", code="invalid_token")
    problem = refusal(token, now_micros())
    if problem is not None:
        raise problem


class _TTLCache(Generic[V]):
    def __init__(self, clock: Callable[[], float]) -> None:
        self._entries: dict[str, tuple[float, V | None]] = {}
        self._clock = clock

    def get(self, key: str) -> tuple[bool, V | None]:
        entry = self._entries.get(key)
        if entry is None or entry[0] < self._clock():
            return False, None
        return True, entry[1]

    def drop(self, stale: Callable[[V], bool]) -> None:
        """Forget the remembered values `stale` picks (misses stay: they cannot be stale)."""
        for key in [k for k, (_, v) in self._entries.items() if v is not None and stale(v)]:
            del self._entries[key]

    def put(self, key: str, value: V | None, ttl: float) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()  # bounded against floods of made-up credentials
        self._entries[key] = (self._clock() + ttl, value)

    async def fetch(self, key: str, load: Callable[[], V | None]) -> V | None:
        """The remembered value, or `load()`'s (run in a worker thread), remembered for
        CREDENTIAL_TTL_S when found and MISS_TTL_S when not."""
        found, value = self.get(key)
        if not found:
            value = await asyncio.to_thread(load)
            self.put(key, value, CREDENTIAL_TTL_S if value is not None else MISS_TTL_S)
        return value


class Authenticator:
    def __init__(self, db: Relational, clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._apps: _TTLCache[q.AppSecret] = _TTLCache(clock)
        self._tokens: _TTLCache[q.Token] = _TTLCache(clock)
        self._owned: _TTLCache[list[q.App]] = _TTLCache(clock)
        self._tenants: _TTLCache[list[q.Tenant]] = _TTLCache(clock)

    async def app_for_secret(self, secret: str | None, app_name: str | None) -> q.App:
        """The app a secret belongs to; 401 if missing or unknown, 403 if `app_name` differs."""
        if not secret:
            raise Unauthorized(
                "an app secret is required (X-Secret header, ?secret= or the body's secret)",
                code="missing_secret",
            )
        key = hashlib.sha256(secret.encode()).hexdigest()
        entry = await self._apps.fetch(key, lambda: q.app_by_secret_hash(self._db, key))
        if entry is None:
            raise Unauthorized("unknown app secret", code="invalid_secret")
        if not entry.live(now_micros()):
            raise Unauthorized(
                "this app secret was replaced by a newer one and its grace period is over",
                code="secret_expired",
            )
        app = entry.app
        if app_name is not None and app_name != app.name:
            raise Forbidden(
                f"this secret belongs to another app than {app_name!r}", field="appName"
            )
        return app

    async def app_from_request(self, req: falcon.asgi.Request, body: object) -> q.App:
        """The app an ingest request speaks for: its secret from the X-Secret header, the
        `secret` query parameter or the JSON body's `secret`; `appName` from the query or
        the body, if given, must name the same app."""
        from_body: dict[str, Any] = body if isinstance(body, dict) else {}
        secret = req.get_header("X-Secret") or req.get_param("secret") or from_body.get("secret")
        app_name = req.get_param("appName") or from_body.get("appName")
        return await self.app_for_secret(
            secret if isinstance(secret, str) else None,
            None if app_name is None else str(app_name),
        )

    async def viewer(self, req: falcon.asgi.Request, scope: str) -> Developer | None:
        """The developer a bearer token names when the request carries one (checked as
        `developer` does), None for an anonymous request: for what anyone may read."""
        if not req.get_header("Authorization"):
            return None
        return await self.developer(req, scope)

    async def developer(self, req: falcon.asgi.Request, scope: str | None = None) -> Developer:
        """The developer a bearer token names; 401 when missing, unknown, expired or revoked,
        403 when the token is limited to scopes and `scope` (what the route needs; None: a
        route only full-access tokens may call) is not among them."""
        header = req.get_header("Authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized(
                "a bearer token is required: Authorization: Bearer bh_<token>",
                code="missing_token",
            )
        token_text = value.strip()
        if not TOKEN.match(token_text):
            raise Unauthorized(
                "malformed token: expected bh_ and 64 hex digits", code="invalid_token"
            )
        key = hashlib.sha256(token_text.encode()).hexdigest()
        token = await self._tokens.fetch(key, lambda: q.token_by_hash(self._db, key))
        if token is None:
            raise Unauthorized("unknown token", code="invalid_token")
        problem = refusal(token, now_micros())
        if problem is not None:
            raise problem
        if token.scopes is not None and (scope is None or scope not in token.scopes):
            needed = f"the scope {scope}" if scope else "a full-access token (no scopes)"
            raise Forbidden(
                f"this route needs {needed}; this token has {', '.join(token.scopes)}",
                code="missing_scope",
            )
        return Developer(token.developer, token.id, token.scopes)

    def forget_token(self, token_id: str) -> None:
        """This process just revoked the token: refuse it at once, not after the cache."""
        self._tokens.drop(lambda token: token.id == token_id)

    def forget_secrets(self, app: str) -> None:
        """This process just replaced or revoked the app's secrets: read them afresh."""
        self._apps.drop(lambda entry: entry.app.name == app)

    async def apps_of(self, developer: str) -> list[q.App]:
        found, apps = self._owned.get(developer)
        if not found or apps is None:
            apps = await asyncio.to_thread(q.apps_of, self._db, developer)
            self._owned.put(developer, apps, CREDENTIAL_TTL_S)
        return apps

    async def tenants_of(self, developer: str) -> list[q.Tenant]:
        """The tenants the developer is a member of (as fresh as `apps_of`)."""
        found, tenants = self._tenants.get(developer)
        if not found or tenants is None:
            tenants = await asyncio.to_thread(q.tenants_of, self._db, developer)
            self._tenants.put(developer, tenants, CREDENTIAL_TTL_S)
        return tenants

    async def owned_app(self, developer: str, app_name: str) -> q.App:
        for owned in await self.apps_of(developer):
            if owned.name == app_name:
                return owned
        app = await asyncio.to_thread(q.app_named, self._db, app_name)
        if app is None:
            raise NotFound(f"no app named {app_name!r}", field="appName")
        if app.developer != developer:
            raise Forbidden(f"app {app_name!r} belongs to another developer", field="appName")
        return app
