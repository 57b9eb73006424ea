"""Payloads of the secret events on the `apps` topic (key: the owner): files, SSH keys and
PGP keys a developer hands to the CI jobs whose manifests name them (docs/jobs.md).

The secret itself travels and rests only encrypted (`ciphertext`, AES-GCM under the key named
`key_id`: base/secret_box.py); the log, the relational store and every read hold nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

SecretKind = Literal["file", "ssh_key", "pgp_key"]
SECRET_KINDS: tuple[SecretKind, ...] = get_args(SecretKind)
MAX_SECRET_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class SecretAdded:
    id: str
    """A UUID: manifests name secrets by it."""
    owner: str
    name: str
    kind: SecretKind
    path: str | None
    """Where a `file` secret is written in the job's home (`~/...`); None for keys."""
    mode: int
    ciphertext: str
    """base64 of nonce + AES-GCM ciphertext and tag."""
    key_id: str


@dataclass(frozen=True, slots=True)
class SecretDeleted:
    id: str
    owner: str
