"""The sign-in in progress: the OAuth `state` bound to the browser that started it.

`GET /api/auth/github/login` makes a random state, sends it to GitHub in the authorize URL and
keeps it, with where to go afterwards, in a short-lived cookie signed by Hutch (a JWT, HS256,
under a key derived from the server key). GitHub's redirect back carries the state in the
query; the callback accepts it only if it is the one in this browser's cookie (compared in
constant time), so a sign-in link made for another browser (login CSRF) cannot finish here.
The redirect target travels signed too: the callback cannot be made to send the browser
anywhere the login did not check (web/redirects.py).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from base import signed_claims
from base.client_errors import BadRequest

STATE_COOKIE = "hutch-oauth-state"
STATE_PATH = "/api/auth/github"
STATE_TTL_S = 600
_AUDIENCE = "hutch:oauth-state"
_RESTART = "start again at /api/auth/github/login"


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    state: str
    redirect_uri: str


def issue(key: bytes, redirect_uri: str, now: float | None = None) -> tuple[PendingSignIn, str]:
    """A new sign-in's state and the cookie value that holds it (valid STATE_TTL_S)."""
    pending = PendingSignIn(secrets.token_urlsafe(32), redirect_uri)
    issued = int(time.time() if now is None else now)
    claims = {"state": pending.state, "redirect_uri": pending.redirect_uri}
    return pending, signed_claims.sign(key, _AUDIENCE, claims, issued, STATE_TTL_S)


def verify(key: bytes, cookie: str | None, state: str | None) -> PendingSignIn:
    """The sign-in `cookie` holds, if `state` is its state; else 400 saying what is wrong."""
    if not cookie:
        raise BadRequest(
            f"no sign-in is in progress in this browser (no {STATE_COOKIE} cookie): {_RESTART}",
            code="missing_state_cookie",
        )
    try:
        claims = signed_claims.read(key, _AUDIENCE, cookie, ("state", "redirect_uri"))
    except signed_claims.ClaimsExpired:
        raise BadRequest(
            f"this sign-in took longer than {STATE_TTL_S // 60} minutes: {_RESTART}",
            code="state_expired",
        ) from None
    except signed_claims.ClaimsInvalid:
        raise BadRequest(
            f"the {STATE_COOKIE} cookie is not one Hutch made: {_RESTART}",
            code="bad_state_cookie",
        ) from None
    expected, redirect_uri = claims["state"], claims["redirect_uri"]
    if not state:
        raise BadRequest("the state parameter is missing", code="missing_state", field="state")
    if not secrets.compare_digest(state.encode("utf-8", "replace"), expected.encode()):
        raise BadRequest(
            f"state does not match this browser's sign-in (a link made for another browser?): "
            f"{_RESTART}",
            code="state_mismatch",
            field="state",
        )
    return PendingSignIn(expected, redirect_uri)
