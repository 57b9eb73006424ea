"""Object storage for build artifacts and images: files under the data directory, or S3.

`open_object_store(url, ...)` picks the adapter from the URL scheme (file:// or s3://);
`finalize_upload` is what accepting a presigned upload needs with either adapter.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from storage.errors import AlreadyExists, NotFound, TooLarge
from storage.objects.names import content_disposition, validate_key
from storage.objects.protocol import (
    DEFAULT_CONTENT_TYPE,
    STAGING_PREFIX,
    ObjectInfo,
    ObjectStore,
    ObjectStream,
    StoredObject,
    is_staging,
    require_staging,
    staging_key,
)
from storage.objects.signing import Grant, SignatureError, verify_signature
from storage.objects.streams import Meter

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "STAGING_PREFIX",
    "Grant",
    "ObjectInfo",
    "ObjectStore",
    "ObjectStream",
    "SignatureError",
    "StoredObject",
    "content_disposition",
    "finalize_upload",
    "is_staging",
    "open_object_store",
    "require_staging",
    "staging_key",
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


async def finalize_upload(
    store: ObjectStore, key: str, *, max_bytes: int, content_type: str
) -> StoredObject:
    """Accept what a client PUT to `staging_key(key)`: make it the write-once object `key`
    (stored with `content_type`, whatever the client sent) and answer its size and SHA-256.

    Idempotent: when `key` already holds an object, a finalize before this one promoted it
    (its answer lost, or the build not recorded), and those bytes are answered again,
    whatever was PUT since. What is staged is dropped either way; an object over
    `max_bytes` (S3 presigned PUTs cannot be limited up front) is deleted and TooLarge
    raised, so nothing oversized stays stored. Raises NotFound when nothing was uploaded.
    """
    staged = staging_key(key)
    try:
        return await store.promote(key, max_bytes=max_bytes, content_type=content_type)
    except TooLarge:
        await store.delete(staged)
        raise
    except AlreadyExists:
        pass
    except NotFound:
        if await store.head(key) is None:
            raise
    # Dropped before hashing: on the filesystem a late unlink would change the file's etag.
    await store.delete(staged)
    return await _describe(store, key)


async def _describe(store: ObjectStore, key: str) -> StoredObject:
    """Size and SHA-256 of an object already stored, read once; the etag of that version."""
    stream = await store.open(key)
    meter = Meter(stream.info.size)
    try:
        async for chunk in stream.chunks:
            meter.add(chunk)
    finally:
        await stream.aclose()
    return StoredObject(
        key=key,
        size=meter.size,
        sha256=meter.sha256,
        content_type=stream.info.content_type,
        etag=stream.info.etag,
    )
