"""The object store interface. Filesystem and S3 both pass tests/conformance/objects.py.

Objects are build artifacts and images, up to a few hundred megabytes: they are streamed in
and out in chunks, never held whole in memory. Keys look like `apps/<app>/<version>/<file>`
and are checked by `names.validate_key` before any adapter touches them.

The interface is async because its caller is the Falcon ASGI app; the drivers underneath
(file I/O, boto3) are blocking, so adapters run them in worker threads (`asyncio.to_thread`)
and never block the event loop. The presign methods do no I/O and are plain functions.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from dataclasses import dataclass
from typing import Protocol

Chunks = AsyncIterable[bytes] | Iterable[bytes]

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # S3's own ceiling for SigV4 presigned URLs


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a completed write stored: the digest is computed while streaming."""

    key: str
    size: int
    sha256: str  # lowercase hex
    content_type: str


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str


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
        """Store the bytes of `chunks` under `key`, replacing any object already there.

        Streams: memory use is bounded by one part (a few MiB), whatever the size. The write
        is all-or-nothing: readers see the old object (or none) until the new one is
        complete, then the new one whole. Past `max_bytes` it stops reading, discards what it
        wrote and raises TooLarge; the previous object under `key`, if any, is untouched. Any
        other failure (including cancellation) also leaves nothing behind. Raises InvalidKey,
        TooLarge, Unavailable (retry later), StorageError.
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

    def presign_get(self, key: str, expires_s: int, *, filename: str | None = None) -> str:
        """A URL anyone can GET the object from for `expires_s` seconds, without credentials.

        With `filename` the download is served as an attachment of that name
        (Content-Disposition). Does no I/O and does not check that the object exists.
        Raises InvalidKey, or ValueError for an expiry outside 1 s .. 7 days.
        """

    def presign_put(
        self,
        key: str,
        expires_s: int,
        *,
        max_bytes: int,
        content_type: str | None = None,
    ) -> str:
        """A URL a client can PUT the object's bytes to for `expires_s` seconds.

        With `content_type` the client must send exactly that Content-Type. The filesystem
        store signs `max_bytes` into the URL and refuses larger bodies (413); S3 presigned
        PUTs cannot carry a size limit, so whoever accepts the upload afterwards must check
        the stored size: `finalize_upload` does both for either store.
        """
