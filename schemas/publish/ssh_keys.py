"""Payloads of the publishing SSH key events on the `apps` topic (key: the owner).

The private key travels and rests only sealed (`ciphertext`: AES-GCM under the key named
`key_id`, base/secret_box.py); the public half and its fingerprint are public and stored
plainly, for the listing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

SshKeyType = Literal[
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"
]
SSH_KEY_TYPES: tuple[SshKeyType, ...] = get_args(SshKeyType)
MAX_LABEL_CHARS = 128
MAX_PRIVATE_KEY_BYTES = 16 * 1024
"""An RSA 16384-bit key in OpenSSH form is about 12 KiB; anything larger is not a key."""


@dataclass(frozen=True, slots=True)
class SshKeyAdded:
    id: str
    """A UUID: publish runs and `GET /api/branches?sshKeyId=` name keys by it."""
    owner: str
    label: str
    key_type: str
    fingerprint: str
    public_key: str
    ciphertext: str
    """base64 of nonce + AES-GCM ciphertext and tag of the OpenSSH private key text."""
    key_id: str


@dataclass(frozen=True, slots=True)
class SshKeyDeleted:
    id: str
    owner: str
