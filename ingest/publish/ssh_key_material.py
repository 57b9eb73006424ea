"""SSH private keys as publishing takes them (the `cryptography` library): generated (Ed25519)
or imported from OpenSSH (`-----BEGIN OPENSSH PRIVATE KEY-----`) or PEM (PKCS#1, SEC1,
PKCS#8) text, and always kept as unencrypted OpenSSH text with its one-line public key and
its SHA256 fingerprint (as `ssh-keygen -l` prints it).

Taken: Ed25519, RSA of 2048 bits or more, ECDSA on P-256, P-384 and P-521. Refused, each with
a message saying why: a passphrase-protected key (Hutch has no passphrase to unlock it with at
push time: remove it with `ssh-keygen -p -N "" -f KEY` first), a public key, DSA (OpenSSH
turned it off), short RSA, other curves, and anything that is not a key. No message quotes
the text it was given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from base.client_errors import Unprocessable

MIN_RSA_BITS = 2048
CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_OPENSSH = re.compile(
    r"-----BEGIN OPENSSH PRIVATE KEY-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)\s*"
    r"-----END OPENSSH PRIVATE KEY-----"
)
_PEM_ENCRYPTED = ("Proc-Type: 4,ENCRYPTED", "BEGIN ENCRYPTED PRIVATE KEY")
_PUBLIC = re.compile(r"^\s*((ssh|ecdsa|sk)-[a-z0-9@.-]+ AAAA|-----BEGIN (RSA |SSH2 )?PUBLIC KEY)")
FIELD = "privateKey"

PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    key_type: str
    """The public key's algorithm name: ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256..."""
    public_key: str
    fingerprint: str
    private_key: str = field(repr=False)


def generate() -> KeyMaterial:
    return _material(ed25519.Ed25519PrivateKey.generate())


def import_key(text: object) -> KeyMaterial:
    """The key `text` holds, or Unprocessable (422, field privateKey) saying why not."""
    if not isinstance(text, str) or not text.strip():
        raise Unprocessable("privateKey must be the private key's text", field=FIELD)
    if _PUBLIC.match(text):
        raise Unprocessable(
            "this is a public key; send the private key (the file without .pub)",
            field=FIELD,
            code="public_key_given",
        )
    data = text.strip().encode("utf-8", "replace") + b"\n"
    if _encrypted(text):
        raise Unprocessable(
            "the private key is protected by a passphrase, which Hutch cannot use at push "
            'time; remove it (ssh-keygen -p -N "" -f KEY) and send the key again',
            field=FIELD,
            code="encrypted_key",
        )
    key: object
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, binascii.Error, struct.error):
        raise Unprocessable(
            "privateKey is not a private key Hutch can read: send an OpenSSH "
            "(-----BEGIN OPENSSH PRIVATE KEY-----) or PEM private key",
            field=FIELD,
            code="bad_key",
        ) from None
    except Exception:  # cryptography raises UnsupportedAlgorithm for unknown key kinds
        raise Unprocessable(
            "privateKey is a kind of key Hutch does not take: use Ed25519, RSA (2048 bits or "
            "more) or ECDSA (P-256, P-384, P-521)",
            field=FIELD,
            code="unsupported_key",
        ) from None
    return _material(_acceptable(key))


def _encrypted(text: str) -> bool:
    if any(marker in text for marker in _PEM_ENCRYPTED):
        return True
    match = _OPENSSH.search(text)
    if match is None:
        return False
    try:
        raw = base64.b64decode(re.sub(r"\s+", "", match["body"]), validate=True)
    except (binascii.Error, ValueError):
        return False
    magic = b"openssh-key-v1\x00"
    if not raw.startswith(magic) or len(raw) < len(magic) + 4:
        return False
    (length,) = struct.unpack(">I", raw[len(magic) : len(magic) + 4])
    cipher = raw[len(magic) + 4 : len(magic) + 4 + length]
    return cipher != b"none"


def _acceptable(key: object) -> PrivateKey:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise Unprocessable(
                f"the RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are needed",
                field=FIELD,
                code="weak_key",
            )
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, CURVES):
            raise Unprocessable(
                f"ECDSA on {key.curve.name} is not taken: use P-256, P-384 or P-521",
                field=FIELD,
                code="unsupported_key",
            )
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, dsa.DSAPrivateKey):  # last: naming DSA makes cryptography warn
        raise Unprocessable(
            "DSA keys are not taken (OpenSSH turned them off): use Ed25519",
            field=FIELD,
            code="unsupported_key",
        )
    raise Unprocessable(
        "privateKey is a kind of key Hutch does not take: use Ed25519, RSA (2048 bits or "
        "more) or ECDSA (P-256, P-384, P-521)",
        field=FIELD,
        code="unsupported_key",
    )


def _material(key: PrivateKey) -> KeyMaterial:
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode("ascii")
    )
    key_type, blob = public.split(" ")[:2]
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    fingerprint = "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")
    return KeyMaterial(key_type, f"{key_type} {blob}", fingerprint, private)
