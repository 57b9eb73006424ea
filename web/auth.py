"""Who is calling: app secrets (ingest), and developers by bearer token (APIs) or by browser
session (the `dev-id` and `session-token` cookies, web/cookies.py); all cached.

How fresh an answer is; these are the bounds the README states:
- A command (create or revoke a token, create an app, rotate or revoke its secrets, change
  its retention, and every other command that takes a `Developer`) re-reads its caller's
  token or session from the relational store after catching up with the log, under the
  command lock (`confirm`, no cache): once `DELETE /api/tokens/{id}` or a logout has
  answered, the revoked token or session can change nothing, in any process.
- Everywhere else a lookup is remembered for at most `CREDENTIAL_TTL_S` (1 s). A command
  answers only once the relational store holds its event, so a revoked token or session, or
  a secret replaced by a rotation without grace, stops working in every process at most 1 s
  after the command answered, and at once in the process that ran it (it drops its cache).
- The end of a replaced secret's grace period, and a token's or session's expiry, travel
  with the cached entry and are checked on every use: each stops working on time, not up to
  1 s later.
- An unknown credential is remembered as unknown for `MISS_TTL_S` (0.5 s).

A session is full access, like a token without scopes. A request it authenticates that may
change something (any method but GET, HEAD and OPTIONS) must also prove it came from Hutch's
own pages: `X-CSRF-Token` (web/cookies.py) or an `Origin` among HUTCH_PUBLIC_URL's and
HUTCH_REDIRECT_ORIGINS'; SameSite=Lax already keeps most cross-site writes from carrying the
cookies, and this covers the rest (a same-site sibling host, an old browser). A bearer token
is never sent by a browser on its own, so it needs no such proof; when a request carries
both, the bearer token decides.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import falcon.asgi

from base.client_errors import Forbidden, NotFound, Unauthorized
from schemas.envelope import now_micros
from schemas.identity import TOKEN
from state import identity_reads as q
from state import people_reads as people
from storage.relational import Relational, Transaction
from web.cookies import (
    CSRF_HEADER,
    DEV_ID_COOKIE,
    SESSION_COOKIE,
    SESSION_FORMAT,
    cookie_value,
    csrf_ok,
    csrf_token,
)

CREDENTIAL_TTL_S = 1.0
MISS_TTL_S = 0.5
MAX_ENTRIES = 50_000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Developer:
    name: str
    token_id: str | None = None
    """The bearer token that named this developer; None for the operator at the CLI."""
    scopes: tuple[str, ...] | None = None
    """What that token may do; None: everything."""
    session_id: str | None = None
    """The browser session that named this developer (then `token_id` is None)."""


def refusal(token: q.Token, now: int) -> Unauthorized | None:
    """Why a token found in the store does not authenticate now, if it does not."""
    if token.revoked_at is not None:
        return Unauthorized("this token has been revoked", code="token_revoked")
    if token.expires_at is not None and token.expires_at <= now:
        return Unauthorized("this token has expired", code="token_expired")
    return None


def session_refusal(session: people.Session, now: int) -> Unauthorized | None:
    """Why a session found in the store does not authenticate now, if it does not."""
    if session.revoked_at is not None:
        return Unauthorized(
            "this session has ended (logged out); sign in again", code="session_revoked"
        )
    if session.expires_at <= now:
        return Unauthorized("this session has expired; sign in again", code="session_expired")
    return None


def confirm(db: Relational | Transaction, caller: Developer) -> None:
    """Raise 401 unless the caller's token or session is live in `db` now, read without any
    cache.

    CommandContext call this under their command lock after catching up, so a token or session
    revoked by a command that has answered is refused here whichever process cached it as
    live. The operator (neither) is not checked. Blocks; call from a thread in async code."""
    if caller.session_id is not None:
        session = people.session_by_id(db, caller.session_id)
        if session is None or session.developer != caller.name:
            raise Unauthorized("unknown session; sign in again", code="invalid_session")
        problem = session_refusal(session, now_micros())
        if problem is not None:
            raise problem
        return
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
    def __init__(
        self,
        db: Relational,
        clock: Callable[[], float] = time.monotonic,
        *,
        csrf_key: bytes | None = None,
        origins: frozenset[str] = frozenset(),
    ) -> None:
        """`csrf_key` keys the X-CSRF-Token (derived from the server key, so every process
        agrees; a random one when not given); `origins` are those a cookie-authenticated
        write may come from (web/redirects.py `allowed_origins`)."""
        self._db = db
        self._csrf_key = csrf_key or secrets.token_bytes(32)
        self._origins = origins
        self._apps: _TTLCache[q.AppSecret] = _TTLCache(clock)
        self._tokens: _TTLCache[q.Token] = _TTLCache(clock)
        self._sessions: _TTLCache[people.Session] = _TTLCache(clock)
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
        """The developer a bearer token or session names when the request carries one
        (checked as `developer` does), None for an anonymous request: for what anyone may
        read."""
        if not req.get_header("Authorization") and SESSION_COOKIE not in req.cookies:
            return None
        return await self.developer(req, scope)

    async def developer(self, req: falcon.asgi.Request, scope: str | None = None) -> Developer:
        """The developer a bearer token, or else the session cookies, name; 401 when missing,
        unknown, expired or revoked, 403 when the token is limited to scopes and `scope`
        (what the route needs; None: a route only full-access tokens may call) is not among
        them, and 403 `csrf_failed` for a session's write without its proof of origin."""
        header = req.get_header("Authorization") or ""
        if not header and SESSION_COOKIE in req.cookies:
            caller = await self.session(req)
            if req.method not in SAFE_METHODS:
                self._check_origin(req, caller)
            return caller
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized(
                "a bearer token is required (Authorization: Bearer bh_<token>), or the "
                "dev-id and session-token cookies of a browser signed in with GitHub",
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

    async def session(self, req: falcon.asgi.Request) -> Developer:
        """The developer the session cookies name, without the write check (for reads and
        logout); 401 when they are missing, malformed, unknown, revoked or expired, or when
        `dev-id` is not the session's developer."""
        token_text = cookie_value(req, SESSION_COOKIE)
        name = cookie_value(req, DEV_ID_COOKIE)
        if token_text is None or name is None:
            raise Unauthorized(
                "a session needs both the dev-id and session-token cookies; sign in again",
                code="missing_session",
            )
        if not SESSION_FORMAT.match(token_text):
            raise Unauthorized(
                "malformed session-token: expected bs_ and 64 hex digits", code="invalid_session"
            )
        key = hashlib.sha256(token_text.encode()).hexdigest()
        found = await self._sessions.fetch(key, lambda: people.session_by_hash(self._db, key))
        if found is None:
            raise Unauthorized("unknown session; sign in again", code="invalid_session")
        problem = session_refusal(found, now_micros())
        if problem is not None:
            raise problem
        if not secrets.compare_digest(name.encode("utf-8", "replace"), found.developer.encode()):
            raise Unauthorized(
                "the dev-id cookie does not name this session's developer; sign in again",
                code="invalid_session",
            )
        return Developer(found.developer, session_id=found.id)

    def csrf_token(self, caller: Developer) -> str | None:
        """The X-CSRF-Token for the caller's session (None for a token's caller)."""
        return None if caller.session_id is None else csrf_token(self._csrf_key, caller.session_id)

    def _check_origin(self, req: falcon.asgi.Request, caller: Developer) -> None:
        assert caller.session_id is not None
        if csrf_ok(self._csrf_key, caller.session_id, req.get_header(CSRF_HEADER)):
            return
        if req.get_header("Origin") in self._origins:
            return
        raise Forbidden(
            f"a write with the session cookies must send the {CSRF_HEADER} header (its value "
            "is csrfToken in GET /api/auth/status) or come from an allowed Origin ("
            f"{', '.join(sorted(self._origins)) or 'none configured'}); or use a bearer token",
            code="csrf_failed",
        )

    def forget_session(self, session_id: str) -> None:
        """This process just ended the session: refuse it at once, not after the cache."""
        self._sessions.drop(lambda session: session.id == session_id)

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
