"""The server's secret key (HUTCH_SECRET_KEY) and the keys derived from it.

With HUTCH_SECRET_KEY empty, a random key is generated once into the data directory
(`secret.key`, mode 0600) and read from there afterwards: by every ingest worker, the query
process and the CLI alike, so a URL one of them signs verifies in the others. Creation is
atomic (written to a private temporary file, then hard-linked into place, which fails if
another process got there first), so concurrent first starts agree on one key.

Each use gets its own key, derived with HMAC-SHA256 under a purpose label, so a value signed
for one purpose (an object URL) can never be replayed as another (a download client hash).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Literal

from base.settings import Settings, SettingsError

KEY_FILE = "secret.key"
MIN_KEY_CHARS = 16

Purpose = Literal[
    "objects",
    "download-clients",
    "upload-keys",
    "job-secrets",
    "csrf",
    "oauth-state",
    "tenant-email",
    "bot-challenge",
]


def secret_key(settings: Settings) -> bytes:
    """HUTCH_SECRET_KEY, or the data directory's generated key (created on first use)."""
    if settings.secret_key:
        if len(settings.secret_key) < MIN_KEY_CHARS:
            raise SettingsError(f"HUTCH_SECRET_KEY must be at least {MIN_KEY_CHARS} characters")
        return settings.secret_key.encode()
    path = settings.data / KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    settings.data.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{KEY_FILE}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process created it first: theirs wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _read(path)


def _read(path: Path) -> bytes:
    key = path.read_bytes().strip()
    if len(key) < MIN_KEY_CHARS:
        raise SettingsError(f"{path} holds no usable key; delete it to generate a new one")
    return key


def derive(key: bytes, purpose: Purpose) -> bytes:
    return hmac.new(key, f"hutch:{purpose}".encode(), hashlib.sha256).digest()
