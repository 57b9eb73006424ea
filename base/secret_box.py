"""Sealing CI job secrets at rest: AES-256-GCM (the `cryptography` library) under named keys.

`seal` encrypts under the current key with a random 96-bit nonce and answers the base64 of
nonce + ciphertext + tag, with the key's id: a short digest of the key, stored beside the
ciphertext (`secret.added.v1`, the `secrets` table), so `open` knows which key to use. The
caller passes associated data naming what the ciphertext is (ingest/secret_commands.py binds
the secret's id, owner, kind, path and mode): a ciphertext copied onto another secret's row or
event does not open.

Keys come from settings (`box_from_settings`): HUTCH_SECRETS_KEY, 32 bytes as 64 hex digits or
base64; empty, a key derived from the server key (base/keys.py, purpose "job-secrets"), which
then must stay the same for the secrets to stay readable.

Rotation: generate a key (`python -c "import secrets; print(secrets.token_hex(32))"`), make it
HUTCH_SECRETS_KEY and add the key it replaces to HUTCH_SECRETS_OLD_KEYS (comma-separated; the
word `derived` stands for the key derived from the server key, the one in use while
HUTCH_SECRETS_KEY was empty). New secrets are sealed with the new key; those sealed before keep
opening with the old one. Secrets are immutable events and nothing re-seals them, so an old key
must stay in HUTCH_SECRETS_OLD_KEYS while any live secret names its id: `hutch secret keys`
counts the live secrets per key id and says which ids this configuration cannot open (a
developer moves a secret to the current key by deleting and re-adding it). A secret whose key
is gone cannot be opened: a job that names it fails at setup, saying which secret and key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from base.keys import derive, secret_key
from base.settings import Settings, SettingsError

KEY_BYTES = 32
NONCE_BYTES = 12
DERIVED = "derived"
"""In HUTCH_SECRETS_OLD_KEYS: the key derived from the server key (the default before a first
rotation)."""


class SecretBoxError(Exception):
    """A ciphertext that cannot be opened; the message says why, never what it holds."""


class UnknownKey(SecretBoxError):
    pass


class Tampered(SecretBoxError):
    pass


def key_id(key: bytes) -> str:
    """A short public name for a key: 16 hex digits of a labelled SHA-256 of it."""
    return hashlib.sha256(b"hutch:secret-key-id:" + key).hexdigest()[:16]


class SecretBox:
    def __init__(self, current: bytes, older: Sequence[bytes] = ()) -> None:
        for key in (current, *older):
            if len(key) != KEY_BYTES:
                raise ValueError(f"a secrets key is {KEY_BYTES} bytes, not {len(key)}")
        self.key_id = key_id(current)
        self._current = AESGCM(current)
        self._keys = {key_id(k): AESGCM(k) for k in older}
        self._keys[self.key_id] = self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id this box opens, the current one first."""
        return (self.key_id, *(k for k in self._keys if k != self.key_id))

    def seal(self, plaintext: bytes, associated: bytes) -> tuple[str, str]:
        """(base64 of nonce + ciphertext + tag, key id)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._current.encrypt(nonce, plaintext, associated)
        return base64.b64encode(nonce + sealed).decode("ascii"), self.key_id

    def open(self, ciphertext: str, key_id: str, associated: bytes) -> bytes:
        aead = self._keys.get(key_id)
        if aead is None:
            raise UnknownKey(
                f"sealed with key {key_id}, which is neither HUTCH_SECRETS_KEY nor in "
                "HUTCH_SECRETS_OLD_KEYS"
            )
        try:
            raw = base64.b64decode(ciphertext, validate=True)
        except (binascii.Error, ValueError):
            raise Tampered("the ciphertext is not base64") from None
        if len(raw) < NONCE_BYTES + 16:
            raise Tampered("the ciphertext is too short to be one")
        try:
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated)
        except InvalidTag:
            raise Tampered(
                "the ciphertext does not authenticate: altered, or sealed for another secret"
            ) from None


def parse_key(text: str, setting: str) -> bytes:
    """A 32-byte key written as 64 hex digits or as base64 (standard or URL-safe)."""
    text = text.strip()
    if len(text) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        key = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise SettingsError(
            f"{setting} must be {KEY_BYTES} bytes written as 64 hex digits or as base64 "
            "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return key


def box_from_settings(settings: Settings, server_key: bytes | None = None) -> SecretBox:
    """The box HUTCH_SECRETS_KEY and HUTCH_SECRETS_OLD_KEYS describe. `server_key` is the
    server's key (base/keys.py `secret_key`), read from settings when not given."""

    def derived() -> bytes:
        return derive(secret_key(settings) if server_key is None else server_key, "job-secrets")

    current = (
        parse_key(settings.secrets_key, "HUTCH_SECRETS_KEY") if settings.secrets_key else derived()
    )
    older = [
        derived() if item.strip() == DERIVED else parse_key(item, "HUTCH_SECRETS_OLD_KEYS")
        for item in settings.secrets_old_keys.split(",")
        if item.strip()
    ]
    return SecretBox(current, older)
