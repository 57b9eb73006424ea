"""Object storage for build artifacts and images: files under the data directory, or S3.

`open_object_store(url, ...)` picks the adapter from the URL scheme (file:// or s3://);
`finalize_upload` is what accepting a presigned upload needs with either adapter.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from storage.errors import NotFound, TooLarge
from storage.objects.names import content_disposition, validate_key
from storage.objects.protocol import (
    DEFAULT_CONTENT_TYPE,
    ObjectInfo,
    ObjectStore,
    ObjectStream,
    StoredObject,
)
from storage.objects.signing import Grant, SignatureError, verify_signature
from storage.objects.streams import Meter

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "Grant",
    "ObjectInfo",
    "ObjectStore",
    "ObjectStream",
    "SignatureError",
    "StoredObject",
    "content_disposition",
    "finalize_upload",
    "open_object_store",
    "validate_key",
    "verify_signature",
]


def open_object_store(url: str, *, public_url: str, secret: bytes) -> ObjectStore:
    """The store for `url` (HUTCH_OBJECTS). `public_url` and `secret` sign file:// URLs.

    Call `await store.start()` before use. boto3 is imported only for s3:// URLs.
    """
    scheme = url.split(":", 1)[0]
    if scheme == "file":
        from storage.objects.filesystem import FilesystemObjectStore

        # As for sqlite:///: what follows the third slash is the path, so file:///./data is
        # relative and file:////srv/objects absolute.
        path = urlsplit(url).path
        root = Path(path[1:] if path.startswith("/") else path)
        return FilesystemObjectStore(root, public_url=public_url, secret=secret)
    if scheme == "s3":
        from storage.objects.s3 import S3Location, S3ObjectStore

        return S3ObjectStore(S3Location.from_url(url))
    raise ValueError(f"unknown object store URL scheme {scheme!r}: use file:/// or s3://")


async def finalize_upload(store: ObjectStore, key: str, *, max_bytes: int) -> StoredObject:
    """Accept an object a client PUT through a presigned URL: its size, type and SHA-256.

    Streams the object once to hash it. An object over `max_bytes` (S3 presigned PUTs cannot
    be limited up front) is deleted and TooLarge raised, so nothing oversized stays stored.
    Raises NotFound when nothing was uploaded under `key`.
    """
    info = await store.head(key)
    if info is None:
        raise NotFound(key)
    if info.size > max_bytes:
        await store.delete(key)
        raise TooLarge(max_bytes)
    stream = await store.open(key)
    meter = Meter(max_bytes)
    try:
        async for chunk in stream.chunks:
            meter.add(chunk)
    except TooLarge:
        # Replaced by a larger object between head and open.
        await store.delete(key)
        raise
    finally:
        await stream.aclose()
    return StoredObject(
        key=key, size=meter.size, sha256=meter.sha256, content_type=stream.info.content_type
    )
