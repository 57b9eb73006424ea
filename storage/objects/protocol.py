"""The object store interface. Filesystem and S3 both pass tests/conformance/objects.py.

Objects are build artifacts and images, up to a few hundred megabytes: they are streamed in
and out in chunks, never held whole in memory. Keys look like
`apps/<app>/<version>/<upload id>/<file>` and are checked by `names.validate_key` before any
adapter touches them.

Two kinds of key. What is served lives under final keys, which are write-once: only
`put_stream` and `promote` write them, each refusing a key that holds an object (S3:
conditional writes, `If-None-Match: *`), so what was hashed when a build was recorded stays
what the key holds; `verify` checks that it still does before anything is served, against
changes made behind the store's back. What clients send through presigned URLs lands under
staging keys (`uploads/<final key>`), the only keys `presign_put` signs: a plain PUT, as any
S3 client sends it, which may be repeated while the URL lasts and overwrites only what was
staged. `promote` then makes the staged bytes the final object, hashing what it writes; a
later PUT to the same URL stages again, and nothing reads it.

The interface is async because its caller is the Falcon ASGI app; the drivers underneath
(file I/O, boto3) are blocking, so adapters run them in worker threads (`asyncio.to_thread`)
and never block the event loop. The presign methods do no I/O and are plain functions.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from dataclasses import dataclass
from typing import Protocol

from storage.errors import InvalidKey
from storage.objects.names import validate_key

Chunks = AsyncIterable[bytes] | Iterable[bytes]

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # S3's own ceiling for SigV4 presigned URLs
STAGING_PREFIX = "uploads/"
"""Where presigned PUTs land: `uploads/<final key>`. No final key starts with it."""


def staging_key(key: str) -> str:
    """The staging key a client uploads the final object `key` to."""
    if is_staging(validate_key(key)):
        raise InvalidKey(f"{key!r} is a staging key, not a final one")
    return validate_key(STAGING_PREFIX + key)


def is_staging(key: str) -> bool:
    return key.startswith(STAGING_PREFIX)


def require_staging(key: str) -> str:
    """`key` if it is a staging key: presigned PUTs write nothing else."""
    if not is_staging(validate_key(key)):
        raise InvalidKey(f"uploads through a signed URL go to {STAGING_PREFIX}…, not to {key!r}")
    return key


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a completed write stored: the digest is computed while streaming."""

    key: str
    size: int
    sha256: str  # lowercase hex
    content_type: str
    etag: str
    """The stored version's tag (ObjectInfo.etag), for `verify`."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str
    etag: str
    """Changes whenever the bytes under the key may have: S3's ETag; for a file, its inode,
    size, modification and change times. Opaque, compared for equality only."""


@dataclass(frozen=True, slots=True)
class ObjectStream:
    """An open object: its metadata, then its bytes in order.

    Iterate `chunks` once (Falcon ASGI accepts it as `resp.stream`); call `aclose()` when
    stopping early so the file or HTTP connection is released at once.
    """

    info: ObjectInfo
    chunks: AsyncGenerator[bytes, None]

    async def aclose(self) -> None:
        await self.chunks.aclose()


class ObjectStore(Protocol):
    async def start(self) -> None:
        """Prepare the store (create the directory; for S3 check, or create, the bucket).

        Raises Unavailable when the backend cannot be reached.
        """

    async def close(self) -> None:
        """Release connections. Idempotent."""

    async def put_stream(
        self,
        key: str,
        chunks: Chunks,
        *,
        max_bytes: int,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> StoredObject:
        """Store the bytes of `chunks` under `key`, which must hold no object yet.

        Streams: memory use is bounded by one part (a few MiB), whatever the size. The write
        is all-or-nothing: readers see no object until it is complete, then the whole of it.
        Write-once: when an object exists under `key` (or one is stored there meanwhile) it
        raises AlreadyExists and leaves that object as it was, whether or not it read the
        chunks first. Past `max_bytes` it stops reading, discards what it wrote and raises
        TooLarge. Any other failure (including cancellation) also leaves nothing behind.
        Raises InvalidKey, AlreadyExists, TooLarge, NoSpace (the disk is full: 507),
        Unavailable (retry later), StorageError.
        """

    async def promote(self, key: str, *, max_bytes: int, content_type: str) -> StoredObject:
        """Make the object staged at `staging_key(key)` the object under `key`.

        The write-once rule of `put_stream` holds: AlreadyExists when `key` holds an object
        (it is left as it was, and so is the staged one). The answer's size and SHA-256 are
        of the bytes `key` now holds, whatever is staged later; on success nothing is left
        staged. NotFound when nothing is staged. Over `max_bytes` it raises TooLarge and
        leaves nothing under `key` (the caller deletes the staged object). Bytes are moved,
        not copied, where the store can (the filesystem links the file); S3, whose
        CopyObject is not conditional on every server, streams them into a conditional
        write. Raises InvalidKey, AlreadyExists, NotFound, TooLarge, NoSpace, Unavailable.
        """

    async def head(self, key: str) -> ObjectInfo | None:
        """Size and content type of the object, or None when there is none."""

    async def open(self, key: str) -> ObjectStream:
        """Open the object for a streaming read. Raises NotFound, InvalidKey, Unavailable.

        The object is looked up before this returns, so a missing key fails here, not
        midway through a response.
        """

    async def delete(self, key: str) -> None:
        """Remove the object. Deleting a missing key is not an error (idempotent)."""

    async def verify(self, key: str, sha256: str, *, etag: str | None = None) -> None:
        """Check that the object still holds the bytes whose SHA-256 is `sha256`.

        `etag` is the one recorded with that hash (StoredObject.etag), if any: while the
        object keeps it, nothing is read. Otherwise the filesystem store hashes the file once
        per change of it (a restore with the same bytes passes); S3 refuses another ETag
        without reading, and hashes the object only when no ETag was recorded. Raises
        Corrupted, NotFound, InvalidKey, Unavailable.
        """

    def presign_get(
        self,
        key: str,
        expires_s: int,
        *,
        filename: str | None = None,
        sha256: str | None = None,
    ) -> str:
        """A URL anyone can GET the object from for `expires_s` seconds, without credentials.

        With `filename` the download is served as an attachment of that name
        (Content-Disposition). With `sha256` the filesystem store, which serves the URL
        itself, `verify`s the object first and refuses other bytes; S3 serves what its
        bucket holds, so callers `verify` before handing the URL out. Does no I/O and does
        not check that the object exists. Raises InvalidKey, or ValueError for an expiry
        outside 1 s .. 7 days.
        """

    def presign_put(
        self,
        key: str,
        expires_s: int,
        *,
        max_bytes: int,
        content_type: str | None = None,
    ) -> str:
        """A URL a client can PUT bytes to for `expires_s` seconds, with no other header
        than (with `content_type`) exactly that Content-Type.

        `key` must be a staging key (InvalidKey otherwise): a URL never writes what is
        served. Each PUT replaces what is staged there. The filesystem store signs
        `max_bytes` into the URL and refuses larger bodies (413); S3 presigned PUTs cannot
        carry a size limit, so whoever accepts the upload afterwards must check the stored
        size: `finalize_upload` does both for either store.
        """
