"""The file operations the filesystem object store is built from: every name is given by a
hard link, which fails if the name is taken (write-once), and made durable with fsyncs."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import BinaryIO

from storage.errors import AlreadyExists, Conflict, NoSpace, NotFound, StorageError, Unavailable


def create(tmp: Path) -> BinaryIO:
    tmp.parent.mkdir(parents=True, exist_ok=True)
    return tmp.open("xb")


def flush(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def publish(tmp: Path, path: Path) -> os.stat_result:
    """Link the finished file to its key unless the key is taken; the stat of the result."""
    link(tmp, path, missing=tmp.name)
    os.unlink(tmp)
    fsync_dir(path.parent)
    # After the unlink, which changes the file's change time: the fingerprint to remember.
    return path.stat()


def link(source: Path, path: Path, *, missing: str) -> None:
    """Give `source` the name `path` unless that is taken (write-once)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        # S3 lets `a` and `a/b` coexist; a filesystem cannot.
        raise Conflict(f"{path.name}: a parent of this key is itself an object") from exc
    try:
        os.link(source, path)
    except FileExistsError as exc:
        if path.is_dir():
            raise Conflict(f"{path.name}: this key is a prefix of other objects") from exc
        raise AlreadyExists(path.name) from exc
    except FileNotFoundError as exc:
        raise NotFound(missing) from exc


def remove(path: Path, meta: Path) -> None:
    for target in (path, meta):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            target.unlink()


def disk_error(exc: OSError) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace("the object store's disk is full; nothing was stored")
    return Unavailable(f"cannot store the object: {exc.strerror or exc}")


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
