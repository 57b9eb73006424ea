"""Where the S3 object store keeps its objects (`s3://bucket?...`), and how S3's refusals map
onto the storage error tree. See storage/objects/s3.py for the URL's parameters."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from botocore.exceptions import ClientError

from storage.errors import AlreadyExists, NotFound, StorageError, Unavailable
from storage.objects.names import validate_key

_MISSING = {"NoSuchKey", "NotFound", "404"}
_TAKEN = {"PreconditionFailed", "412"}  # a conditional write (If-None-Match: *) refused
# ConditionalRequestConflict: another conditional write to the key is in flight; retrying
# ends in success or in PreconditionFailed.
_TRANSIENT = {
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "ConditionalRequestConflict",
    "503",
    "500",
}


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    endpoint: str | None = None
    public_endpoint: str | None = None
    region: str | None = None
    prefix: str = ""
    create_bucket: bool = False

    @classmethod
    def from_url(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"expected s3://bucket?..., got {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        prefix = query.get("prefix", "").strip("/")
        if prefix:
            validate_key(prefix)
        return cls(
            bucket=parts.netloc,
            endpoint=query.get("endpoint") or None,
            public_endpoint=query.get("public_endpoint") or None,
            region=query.get("region") or None,
            prefix=f"{prefix}/" if prefix else "",
            create_bucket=query.get("create_bucket", "").lower() in ("1", "true", "yes"),
        )


def translate(exc: Exception, key: str = "") -> StorageError:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            return NotFound(key or code)
        if code in _TAKEN:
            return AlreadyExists(key or code)
        if code in _TRANSIENT:
            return Unavailable(f"S3: {code}")
        return StorageError(f"S3 refused the request: {code}")
    return Unavailable(f"S3 unreachable: {exc}")
