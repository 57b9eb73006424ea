"""What the filesystem store knows about a file besides its bytes, in `.meta/<key>.json`.

    {"inode": 1234, "content_type": "image/png", "etag": "4d2-3-…", "sha256": "…"}

Each fact is tied to what it describes, so a sidecar left stale by a crash, a restore or a
change made behind the store's back is never believed: the content type holds for the file
with that inode, the SHA-256 for the file with that fingerprint (`etag`: inode, size,
modification and change times, the last of which no user-space call can set back). Writing
the bytes of a file changes its fingerprint, so they are hashed again before being trusted.
Sidecars are replaced whole (written aside, then renamed), never edited in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO

import orjson

HASH_BLOCK = 1 << 20


def fingerprint(st: os.stat_result) -> str:
    """The file's etag: changes when its bytes may have changed, or it was replaced."""
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}-{st.st_ctime_ns:x}"


def read(meta: Path) -> dict[str, Any]:
    """The sidecar's fields; empty when it is missing or unreadable."""
    try:
        fields = orjson.loads(meta.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return fields if isinstance(fields, dict) else {}


def content_type(fields: dict[str, Any], st: os.stat_result) -> str | None:
    value = fields.get("content_type")
    return value if fields.get("inode") == st.st_ino and isinstance(value, str) else None


def sha256(fields: dict[str, Any], st: os.stat_result) -> str | None:
    value = fields.get("sha256")
    return value if fields.get("etag") == fingerprint(st) and isinstance(value, str) else None


def describe(st: os.stat_result, kind: str | None, digest: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"inode": st.st_ino, "etag": fingerprint(st)}
    if kind is not None:
        fields["content_type"] = kind
    if digest is not None:
        fields["sha256"] = digest
    return fields


def write(meta: Path, tmp_dir: Path, fields: dict[str, Any]) -> None:
    """Replace the sidecar atomically; nothing is left in `tmp_dir` if that fails."""
    meta.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{secrets.token_hex(16)}.json"
    try:
        tmp.write_bytes(orjson.dumps(fields))
        os.replace(tmp, meta)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def hash_file(handle: BinaryIO) -> str:
    """SHA-256 of an open file, read from its start."""
    handle.seek(0)
    digest = hashlib.sha256()
    while block := handle.read(HASH_BLOCK):
        digest.update(block)
    return digest.hexdigest()
