"""HMAC-signed, expiring URLs for the filesystem store, which Hutch serves itself.

    GET  {public_url}/objects/{key}?expires=1767225600&filename=app.apk&sha256=...&sig=...
    PUT  {public_url}/objects/{key}?expires=1767225600&max=209715200&type=...&sig=...

`expires` is a Unix time in seconds. `sig` is base64url (unpadded) HMAC-SHA256, under the
server's secret, of a JSON array of every field that decides what the URL grants: a version
tag, the HTTP method, the key, the expiry, and the optional download name, size limit,
content type and the SHA-256 a GET may serve. So a GET URL cannot be replayed as a PUT, nor a
PUT's limit raised, nor the key, expiry or expected bytes changed. Verification is pure (the
caller passes `now`) and compares in constant time; the Falcon resource that serves
`/objects/{key}` calls `verify_signature` and then the store, turning SignatureError into 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlencode

import orjson

from storage.errors import StorageError
from storage.objects.names import validate_content_type, validate_key

Method = Literal["GET", "PUT"]
_VERSION = "hutch-objects-v2"


class SignatureError(StorageError):
    """A signed URL that is malformed, tampered with or expired (403 to the client)."""

    def __init__(self, reason: Literal["malformed", "bad_signature", "expired"], detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified URL allows: one method on one key until `expires`."""

    method: Method
    key: str
    expires: int
    filename: str | None = None  # GET: serve as an attachment of this name
    max_bytes: int | None = None  # PUT: refuse a larger body with 413
    content_type: str | None = None  # PUT: the Content-Type the object is stored with
    sha256: str | None = None  # GET: serve only these bytes (the store verifies them first)


def _mac(secret: bytes, grant: Grant) -> str:
    message = orjson.dumps(
        [
            _VERSION,
            grant.method,
            grant.key,
            grant.expires,
            grant.filename,
            grant.max_bytes,
            grant.content_type,
            grant.sha256,
        ]
    )
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_url(secret: bytes, base_url: str, grant: Grant) -> str:
    """The URL for `grant` under `base_url` (Hutch's public URL, no trailing slash needed)."""
    if not secret:
        raise ValueError("signing needs a non-empty secret key")
    validate_key(grant.key)
    params: dict[str, str] = {"expires": str(grant.expires)}
    if grant.filename is not None:
        params["filename"] = grant.filename
    if grant.max_bytes is not None:
        params["max"] = str(grant.max_bytes)
    if grant.content_type is not None:
        params["type"] = validate_content_type(grant.content_type)
    if grant.sha256 is not None:
        params["sha256"] = grant.sha256
    params["sig"] = _mac(secret, grant)
    path = quote(grant.key, safe="/")
    return f"{base_url.rstrip('/')}/objects/{path}?{urlencode(params, quote_via=quote)}"


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 15:
        raise SignatureError("malformed", f"the {name!r} parameter is not a number")
    return int(raw)


def verify_signature(
    secret: bytes, method: str, key: str, params: Mapping[str, str], now: float
) -> Grant:
    """Check a request for `/objects/{key}` against its query parameters at time `now`.

    `key` is the path after `/objects/`, percent-decoded; `params` the decoded query string.
    Returns the Grant to act on (serve with `filename`, store with `max_bytes` and
    `content_type`). Raises SignatureError (reason malformed, bad_signature or expired) and
    InvalidKey; the signature is checked before the expiry so an expired forgery reads as a
    forgery.
    """
    if method not in ("GET", "PUT"):
        raise SignatureError("malformed", f"signed URLs do not allow {method}")
    validate_key(key)
    sig = params.get("sig")
    expires = _int_param(params, "expires")
    if sig is None or expires is None:
        raise SignatureError("malformed", "the URL is not signed (expires and sig required)")
    content_type = params.get("type")
    grant = Grant(
        method="GET" if method == "GET" else "PUT",
        key=key,
        expires=expires,
        filename=params.get("filename"),
        max_bytes=_int_param(params, "max"),
        content_type=content_type,
        sha256=params.get("sha256"),
    )
    expected = _mac(secret, grant)
    if not hmac.compare_digest(sig.encode("utf-8", "replace"), expected.encode("ascii")):
        raise SignatureError("bad_signature", "the URL's signature does not match")
    if now >= expires:
        raise SignatureError("expired", "the URL has expired")
    if method == "PUT" and grant.max_bytes is None:
        raise SignatureError("malformed", "a signed upload URL must carry a size limit")
    return grant
