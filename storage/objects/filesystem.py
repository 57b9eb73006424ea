"""The embedded object store: files under the data directory, URLs signed by Hutch.

Layout under the root:
    <key>                      the object's bytes
    .meta/<key>.json           its content type and SHA-256, tied to the file (sidecars.py)
    .tmp/<random>              writes in progress

Keys never start a segment with '.', so they cannot reach the bookkeeping directories.
A write goes to .tmp, is fsynced, then hard-linked to the key, which fails if the key is
taken: objects are write-once, and readers see no file or the whole of it. A full disk is
NoSpace, with the partial file removed. `promote` moves a staged file the same way (a link to
the final key, then the staged name unlinked): no byte is copied, and since no file is ever
written in place, the final key keeps those bytes whatever is staged after.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import secrets
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import BinaryIO

from storage.errors import AlreadyExists, Corrupted, NotFound, TooLarge
from storage.objects import files, sidecars
from storage.objects.names import (
    validate_content_type,
    validate_expiry,
    validate_key,
)
from storage.objects.protocol import (
    DEFAULT_CONTENT_TYPE,
    MAX_PRESIGN_SECONDS,
    Chunks,
    ObjectInfo,
    ObjectStream,
    StoredObject,
    require_staging,
    staging_key,
)
from storage.objects.signing import Grant, sign_url
from storage.objects.streams import Meter, metered_parts

WRITE_BLOCK = 1 << 20  # bytes handed to a worker thread per write
READ_BLOCK = 256 << 10


class FilesystemObjectStore:
    def __init__(
        self,
        root: Path,
        *,
        public_url: str,
        secret: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the filesystem object store needs a secret key to sign URLs")
        self.root = root.resolve()
        self._public_url = public_url
        self._secret = secret
        self._clock = clock

    def _path(self, key: str) -> Path:
        validate_key(key)
        path = self.root / key
        # validate_key already rules out escapes; this guards against a symlinked directory.
        if not path.resolve().is_relative_to(self.root):
            raise NotFound(key)
        return path

    def _meta_path(self, key: str) -> Path:
        return self.root / ".meta" / f"{key}.json"

    async def start(self) -> None:
        for sub in (self.root, self.root / ".meta", self.root / ".tmp"):
            await asyncio.to_thread(sub.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    async def put_stream(
        self,
        key: str,
        chunks: Chunks,
        *,
        max_bytes: int,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> StoredObject:
        path = self._path(key)
        validate_content_type(content_type)
        if await asyncio.to_thread(path.is_file):
            raise AlreadyExists(key)  # before reading a byte; the link below decides races
        meter = Meter(max_bytes)
        tmp = self.root / ".tmp" / secrets.token_hex(16)
        try:
            handle = await asyncio.to_thread(files.create, tmp)
            try:
                async for block in metered_parts(chunks, meter, WRITE_BLOCK):
                    await asyncio.to_thread(handle.write, block)
                await asyncio.to_thread(files.flush, handle)
            finally:
                handle.close()
            st = await asyncio.to_thread(files.publish, tmp, path)
            fields = sidecars.describe(st, content_type, meter.sha256)
            try:
                await asyncio.to_thread(
                    sidecars.write, self._meta_path(key), self.root / ".tmp", fields
                )
            except BaseException:
                files.remove(path, self._meta_path(key))  # ours: nobody else can have written it
                raise
        except OSError as exc:
            raise files.disk_error(exc) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return StoredObject(
            key=key,
            size=meter.size,
            sha256=meter.sha256,
            content_type=content_type,
            etag=sidecars.fingerprint(st),
        )

    async def promote(self, key: str, *, max_bytes: int, content_type: str) -> StoredObject:
        path = self._path(key)
        staged = staging_key(key)
        validate_content_type(content_type)
        try:
            return await asyncio.to_thread(
                self._promote, key, path, self._path(staged), staged, max_bytes, content_type
            )
        except OSError as exc:
            raise files.disk_error(exc) from exc

    def _promote(
        self, key: str, path: Path, source: Path, staged: str, max_bytes: int, kind: str
    ) -> StoredObject:
        if path.is_file():
            raise AlreadyExists(key)
        try:
            if source.stat().st_size > max_bytes:
                raise TooLarge(max_bytes)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(staged) from None
        files.link(source, path, missing=staged)
        files.remove(source, self._meta_path(staged))
        files.fsync_dir(source.parent)
        files.fsync_dir(path.parent)
        with path.open("rb") as handle:
            st = os.fstat(handle.fileno())  # after the unlink, which changed its ctime
            if st.st_size > max_bytes:  # restaged, larger, between the check and the link
                files.remove(path, self._meta_path(key))
                raise TooLarge(max_bytes)
            digest = sidecars.hash_file(handle)
        fields = sidecars.describe(st, kind, digest)
        sidecars.write(self._meta_path(key), self.root / ".tmp", fields)
        return StoredObject(
            key=key,
            size=st.st_size,
            sha256=digest,
            content_type=kind,
            etag=sidecars.fingerprint(st),
        )

    async def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        return await asyncio.to_thread(self._stat, key, path)

    def _stat(self, key: str, path: Path) -> ObjectInfo | None:
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        return self._describe(key, st)

    def _describe(self, key: str, st: os.stat_result) -> ObjectInfo:
        kind = sidecars.content_type(sidecars.read(self._meta_path(key)), st)
        if kind is None:
            kind = mimetypes.guess_type(key)[0] or DEFAULT_CONTENT_TYPE
        return ObjectInfo(
            key=key, size=st.st_size, content_type=kind, etag=sidecars.fingerprint(st)
        )

    async def open(self, key: str) -> ObjectStream:
        handle = await asyncio.to_thread(self._open, key)
        # Described from the open descriptor: a concurrent change cannot make them disagree.
        st = await asyncio.to_thread(os.fstat, handle.fileno())
        info = await asyncio.to_thread(self._describe, key, st)
        return ObjectStream(info=info, chunks=_read_chunks(handle))

    def _open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFound(key) from exc

    async def verify(self, key: str, sha256: str, *, etag: str | None = None) -> None:
        if not await asyncio.to_thread(self._holds, key, sha256, etag):
            raise Corrupted(f"{key}: the stored bytes do not match their recorded SHA-256")

    def _holds(self, key: str, sha256: str, etag: str | None) -> bool:
        with self._open(key) as handle:
            st = os.fstat(handle.fileno())
            if etag is not None and etag == sidecars.fingerprint(st):
                return True  # unchanged since it was hashed for the record
            meta = self._meta_path(key)
            fields = sidecars.read(meta)
            known = sidecars.sha256(fields, st)
            if known is None:
                # Changed behind the store's back, or restored: hash it once, remember it.
                known = sidecars.hash_file(handle)
                kind = sidecars.content_type(fields, st)
                with contextlib.suppress(OSError):
                    sidecars.write(meta, self.root / ".tmp", sidecars.describe(st, kind, known))
            return known == sha256

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(files.remove, self._path(key), self._meta_path(key))

    def presign_get(
        self,
        key: str,
        expires_s: int,
        *,
        filename: str | None = None,
        sha256: str | None = None,
    ) -> str:
        validate_expiry(expires_s, MAX_PRESIGN_SECONDS)
        expires = int(self._clock()) + expires_s
        grant = Grant(method="GET", key=key, expires=expires, filename=filename, sha256=sha256)
        return sign_url(self._secret, self._public_url, grant)

    def presign_put(
        self,
        key: str,
        expires_s: int,
        *,
        max_bytes: int,
        content_type: str | None = None,
    ) -> str:
        validate_expiry(expires_s, MAX_PRESIGN_SECONDS)
        expires = int(self._clock()) + expires_s
        grant = Grant(
            method="PUT",
            key=require_staging(key),
            expires=expires,
            max_bytes=max_bytes,
            content_type=content_type,
        )
        return sign_url(self._secret, self._public_url, grant)


async def _read_chunks(handle: BinaryIO) -> AsyncGenerator[bytes, None]:
    try:
        while chunk := await asyncio.to_thread(handle.read, READ_BLOCK):
            yield chunk
    finally:
        handle.close()
