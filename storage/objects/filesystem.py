"""The embedded object store: files under the data directory, URLs signed by Hutch.

Layout under the root:
    <key>                      the object's bytes
    .meta/<key>.json           its content type, tied to the file's inode
    .tmp/<random>              writes in progress

Keys never start a segment with '.', so they cannot reach the bookkeeping directories.
A write goes to .tmp, is fsynced, then renamed over the key (atomic on POSIX), so readers see
the old file or the new one whole. The sidecar records the inode it describes: when a crash
or a racing writer leaves it describing another file, it is ignored and the content type is
guessed from the key.
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

import orjson

from storage.errors import Conflict, NotFound, StorageError
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
        meter = Meter(max_bytes)
        tmp = self.root / ".tmp" / secrets.token_hex(16)
        handle = await asyncio.to_thread(_create, tmp)
        try:
            try:
                async for block in metered_parts(chunks, meter, WRITE_BLOCK):
                    await asyncio.to_thread(handle.write, block)
                await asyncio.to_thread(_flush, handle)
            finally:
                handle.close()
            inode = await asyncio.to_thread(_publish, tmp, path, self._meta_path(key))
            await asyncio.to_thread(
                _write_meta, self._meta_path(key), self.root / ".tmp", inode, content_type
            )
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return StoredObject(
            key=key, size=meter.size, sha256=meter.sha256, content_type=content_type
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
        content_type = None
        try:
            meta = orjson.loads(self._meta_path(key).read_bytes())
            if meta.get("inode") == st.st_ino:
                content_type = meta.get("content_type")
        except (OSError, orjson.JSONDecodeError):
            pass
        if not isinstance(content_type, str):
            content_type = mimetypes.guess_type(key)[0] or DEFAULT_CONTENT_TYPE
        return ObjectInfo(key=key, size=st.st_size, content_type=content_type)

    async def open(self, key: str) -> ObjectStream:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFound(key) from exc
        # Size from the open descriptor: a concurrent replace cannot make it disagree.
        info = await asyncio.to_thread(self._stat, key, path)
        size = os.fstat(handle.fileno()).st_size
        content_type = info.content_type if info else DEFAULT_CONTENT_TYPE
        return ObjectStream(
            info=ObjectInfo(key=key, size=size, content_type=content_type),
            chunks=_read_chunks(handle),
        )

    async def delete(self, key: str) -> None:
        path = self._path(key)
        meta = self._meta_path(key)

        def remove() -> None:
            for target in (path, meta):
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    target.unlink()

        await asyncio.to_thread(remove)

    def presign_get(self, key: str, expires_s: int, *, filename: str | None = None) -> str:
        validate_expiry(expires_s, MAX_PRESIGN_SECONDS)
        expires = int(self._clock()) + expires_s
        grant = Grant(method="GET", key=key, expires=expires, filename=filename)
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
            key=key,
            expires=expires,
            max_bytes=max_bytes,
            content_type=content_type,
        )
        return sign_url(self._secret, self._public_url, grant)


def _create(tmp: Path) -> BinaryIO:
    tmp.parent.mkdir(parents=True, exist_ok=True)
    return tmp.open("xb")


def _flush(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _publish(tmp: Path, path: Path, meta: Path) -> int:
    """Rename the finished file over the key; returns its inode for the sidecar."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        # S3 lets `a` and `a/b` coexist; a filesystem cannot.
        raise Conflict(f"{path.name}: a parent of this key is itself an object") from exc
    if path.is_dir():
        raise Conflict(f"{path.name}: this key is a prefix of other objects")
    # Drop the old sidecar first: a crash between the two leaves no stale description.
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        meta.unlink()
    try:
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError(f"cannot store the object: {exc.strerror}") from exc
    _fsync_dir(path.parent)
    return path.stat().st_ino


def _write_meta(meta: Path, tmp_dir: Path, inode: int, content_type: str) -> None:
    meta.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{secrets.token_hex(16)}.json"
    tmp.write_bytes(orjson.dumps({"inode": inode, "content_type": content_type}))
    os.replace(tmp, meta)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _read_chunks(handle: BinaryIO) -> AsyncGenerator[bytes, None]:
    try:
        while chunk := await asyncio.to_thread(handle.read, READ_BLOCK):
            yield chunk
    finally:
        handle.close()
