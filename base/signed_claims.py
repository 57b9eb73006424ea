"""Short-lived claims Hutch signs and reads back itself: JWTs (PyJWT, HS256) under a key
derived from the server key for one purpose (base/keys.py), with an audience naming that use.
The sign-in state cookie (web/oauth_state.py) and the tenant e-mail links
(ingest/tenant_email.py) are made and checked here, so both check the same things: the
signature before the times (a tampered token is invalid, never merely expired), the audience,
and that every claim the caller needs is a non-empty string."""

from __future__ import annotations

from collections.abc import Sequence

import jwt

_ALGORITHM = "HS256"


class ClaimsExpired(Exception):
    pass


class ClaimsInvalid(Exception):
    pass


def sign(key: bytes, audience: str, claims: dict[str, str], now_s: int, ttl_s: int) -> str:
    body: dict[str, object] = {**claims, "aud": audience, "iat": now_s, "exp": now_s + ttl_s}
    return jwt.encode(body, key, algorithm=_ALGORITHM)


def read(key: bytes, audience: str, token: str, names: Sequence[str]) -> dict[str, str]:
    """The claims `names` of `token`; ClaimsExpired or ClaimsInvalid when it cannot be used."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[_ALGORITHM],
            audience=audience,
            options={"require": ["exp", "iat", "aud", *names]},
        )
    except jwt.ExpiredSignatureError:
        raise ClaimsExpired from None
    except jwt.InvalidTokenError:
        raise ClaimsInvalid from None
    values = {name: claims.get(name) for name in names}
    if not all(isinstance(v, str) and v for v in values.values()):
        raise ClaimsInvalid
    return {name: str(v) for name, v in values.items()}
