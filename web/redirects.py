"""Where sign-in, logout and the GitHub App setup may send a browser: the redirect allow-list.

A redirect target taken from a query is either a path on this server (one leading `/`) or an
absolute http(s) URL whose origin is HUTCH_PUBLIC_URL's or one of HUTCH_REDIRECT_ORIGINS.
Anything a browser could read as another host is refused: `//evil` and `/\\evil`
(scheme-relative), `https:evil` (no authority), userinfo (`https://ours@evil`), backslashes,
control characters and whitespace (browsers drop tabs and newlines, so `/\\t/evil` would turn
into `//evil`), and paths whose percent-decoded form is scheme-relative. Falcon has already
decoded the query once, so `%2F%2Fevil` arrives here as `//evil`.

The same origins are the ones a cookie-authenticated write may come from (web/auth.py).
"""

from __future__ import annotations

import functools
from urllib.parse import unquote, urlsplit

from base.client_errors import BadRequest
from base.settings import Settings, SettingsError

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}


def safe_redirect(value: str, settings: Settings, field: str = "redirect_uri") -> str:
    """`value` if it is an allowed redirect target; else 400 `redirect_not_allowed`."""
    if _allowed(value, allowed_origins(settings)):
        return value
    raise BadRequest(
        f"{field} must be a path on this server (/portal) or a URL on an allowed origin "
        f"({', '.join(sorted(allowed_origins(settings)))}); set HUTCH_REDIRECT_ORIGINS to "
        "allow more",
        code="redirect_not_allowed",
        field=field,
    )


def allowed_origins(settings: Settings) -> frozenset[str]:
    """HUTCH_PUBLIC_URL's origin and HUTCH_REDIRECT_ORIGINS', normalised (`origin_of`)."""
    return _origins(settings.public_url, settings.redirect_origins)


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]`, lowercased and without the scheme's default port; None for
    anything that is not an absolute http(s) URL without userinfo."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in SCHEMES or not host or "@" in parts.netloc:
        return None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets in an origin
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


@functools.lru_cache(maxsize=8)
def _origins(public_url: str, extra: str) -> frozenset[str]:
    origins = set()
    for url in [public_url, *(o.strip() for o in extra.split(",") if o.strip())]:
        origin = origin_of(url)
        if origin is None:
            raise SettingsError(f"not an http(s) origin for redirects: {url!r}")
        origins.add(origin)
    return frozenset(origins)


def _allowed(value: str, origins: frozenset[str]) -> bool:
    if not value or any(c == "\\" or c.isspace() or not c.isprintable() for c in value):
        return False
    if value.startswith("/"):
        decoded = unquote(value)
        return not (
            decoded.startswith("//")
            or "\\" in decoded
            or any(c.isspace() or not c.isprintable() for c in decoded)
        )
    return origin_of(value) in origins
