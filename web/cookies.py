"""The browser session's cookies (BuildHut's `dev-id` and `session-token`) and its CSRF token.

Both cookies are HttpOnly (no script reads them), SameSite=Lax (a cross-site POST, a form or a
fetch, does not carry them; a top-level GET, such as GitHub's redirect back, does), Path=/,
and Secure when the browser reached Hutch over TLS: the request came in as https (Falcon's
`forwarded_scheme` reads `Forwarded` and `X-Forwarded-Proto` from a TLS proxy) or
HUTCH_PUBLIC_URL is https. Over plain http a Secure cookie would never be sent back.

A cookie-authenticated write also proves it came from Hutch's own pages (web/auth.py): with
`X-CSRF-Token`, an HMAC of the session id under a key derived from the server key, which
`/api/auth/status` hands to a signed-in page, or with an allowed `Origin`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime

import falcon.asgi

from base.settings import Settings

DEV_ID_COOKIE = "dev-id"
SESSION_COOKIE = "session-token"
SESSION_FORMAT = re.compile(r"^bs_[0-9a-f]{64}$")
CSRF_HEADER = "X-CSRF-Token"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def secure(req: falcon.asgi.Request, settings: Settings) -> bool:
    """Whether cookies set in answer to `req` get the Secure attribute."""
    return req.forwarded_scheme == "https" or settings.public_url.lower().startswith("https:")


def set_session(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    settings: Settings,
    developer: str,
    token: str,
) -> None:
    """Sign the browser in: both cookies, for as long as the session lasts."""
    for name, value in ((DEV_ID_COOKIE, developer), (SESSION_COOKIE, token)):
        set_cookie(req, resp, settings, name, value, "/", settings.session_ttl_s)


def clear_session(req: falcon.asgi.Request, resp: falcon.asgi.Response, settings: Settings) -> None:
    """Ask the browser to drop both cookies (the session itself is revoked by the caller)."""
    for name in (DEV_ID_COOKIE, SESSION_COOKIE):
        clear_cookie(req, resp, settings, name, "/")


def set_cookie(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    settings: Settings,
    name: str,
    value: str,
    path: str,
    max_age: int,
) -> None:
    # Falcon's own default is secure=True, which a browser on plain http would never send
    # back: always say which.
    resp.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        secure=secure(req, settings),
        http_only=True,
        same_site="Lax",
    )


def clear_cookie(
    req: falcon.asgi.Request,
    resp: falcon.asgi.Response,
    settings: Settings,
    name: str,
    path: str,
) -> None:
    resp.set_cookie(
        name,
        "",
        expires=_EPOCH,
        max_age=0,
        path=path,
        secure=secure(req, settings),
        http_only=True,
        same_site="Lax",
    )


def cookie_value(req: falcon.asgi.Request, name: str) -> str | None:
    """The cookie's value; a request carrying it twice (a sibling host's cookie next to
    ours) names no one."""
    values = req.get_cookie_values(name) or []
    return values[0] if len(values) == 1 and values[0] else None


def csrf_token(key: bytes, session_id: str) -> str:
    """The X-CSRF-Token a page signed in with this session sends with its writes."""
    return hmac.new(key, session_id.encode(), hashlib.sha256).hexdigest()


def csrf_ok(key: bytes, session_id: str, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(csrf_token(key, session_id), sent)
