"""Reading an OpenPGP public key with the real `gpg` (GnuPG), not by hand.

`gpg --show-keys --with-colons` lists what it reads (doc/DETAILS in GnuPG's sources is the
format) without keeping it: it runs in a throwaway home directory (0700, removed afterwards),
with no agent started, no dirmngr and so no network, no options file, and a time limit. GnuPG
is kept up to date by the distribution and reads every key packet the keyservers hand out;
PGPy, the Python alternative, is barely maintained. GnuPG 2.2 reads v4 keys (40-hex
fingerprints); v5 and v6 keys are read only by newer releases.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import re
import shutil
import tempfile
from dataclasses import dataclass

GPG = "gpg"
TIMEOUT_S = 10.0
MAX_OUTPUT_BYTES = 4 << 20
_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
_ARMORED = re.compile(
    rb"-----BEGIN PGP PUBLIC KEY BLOCK-----.*?-----END PGP PUBLIC KEY BLOCK-----", re.DOTALL
)
_NAMED_BY_BITS = {"1": "rsa", "2": "rsa", "3": "rsa", "16": "elg", "20": "elg", "17": "dsa"}
_ECC = {"18", "19", "22", "25", "26", "27", "28"}


class UnreadableKey(ValueError):
    """The data is not exactly one OpenPGP public key that gpg can read."""


class GpgMissing(RuntimeError):
    """gpg is not installed (or not on PATH), or did not run in time."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    fingerprint: str
    """The primary key's, upper-case hex."""
    key_id: str
    algorithm: str
    """As gpg names it: rsa4096, dsa2048, ed25519, nistp256..."""
    created: str
    """ISO 8601, UTC."""
    expires: str | None
    revoked: bool
    user_ids: tuple[str, ...]
    subkey_fingerprints: tuple[str, ...]
    armored: str
    """The key's ASCII armour, as it was given."""

    def emails(self) -> set[str]:
        """The e-mail addresses its user ids carry, case-folded."""
        found = set()
        for uid in self.user_ids:
            inside = uid[uid.rfind("<") + 1 : uid.rfind(">")] if uid.endswith(">") else uid
            if "@" in inside and not any(c.isspace() for c in inside):
                found.add(inside.casefold())
        return found


async def read_key(data: bytes, timeout_s: float = TIMEOUT_S) -> PublicKey:
    """The one public key in `data` (ASCII-armoured). Raises UnreadableKey, GpgMissing."""
    armour = _ARMORED.findall(data)
    if len(armour) != 1:
        raise UnreadableKey(
            "not an ASCII-armoured OpenPGP public key block"
            if not armour
            else f"{len(armour)} key blocks where one was expected"
        )
    listing = await _show_keys(armour[0], timeout_s)
    return _parse(listing, armour[0].decode("ascii", "replace"))


async def _show_keys(armoured: bytes, timeout_s: float) -> str:
    home = await asyncio.to_thread(tempfile.mkdtemp, prefix="hutch-gpg-")
    try:
        try:
            process = await asyncio.create_subprocess_exec(
                GPG,
                *("--homedir", home, "--batch", "--no-tty", "--no-options", "--quiet"),
                *("--no-autostart", "--disable-dirmngr", "--no-auto-key-retrieve"),
                *("--with-colons", "--fixed-list-mode", "--show-keys"),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
            )
        except FileNotFoundError:
            raise GpgMissing("gpg (GnuPG) is not installed on this server") from None
        try:
            async with asyncio.timeout(timeout_s):
                out, _ = await process.communicate(armoured)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise GpgMissing(f"gpg did not read the key within {timeout_s:g} s") from None
    finally:
        await asyncio.to_thread(shutil.rmtree, home, True)
    if process.returncode != 0 or not out:
        raise UnreadableKey("gpg found no OpenPGP public key in it")
    if len(out) > MAX_OUTPUT_BYTES:
        raise UnreadableKey("the key is too complex to list")
    return out.decode("utf-8", "replace")


def _text(field: str) -> str:
    """A colon-listing field: gpg writes ':' and control characters as \\xNN escapes."""
    raw = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), field.encode("utf-8"))
    return raw.decode("utf-8", "replace")


def _when(field: str) -> str | None:
    if not field.isdigit():
        return None
    moment = datetime.datetime.fromtimestamp(int(field), datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _algorithm(fields: list[str]) -> str:
    number, bits = fields[3], fields[2]
    if number in _NAMED_BY_BITS:
        return f"{_NAMED_BY_BITS[number]}{bits}"
    curve = fields[16] if len(fields) > 16 else ""
    if number in _ECC and curve:
        return curve
    return f"algorithm {number}"


def _parse(listing: str, armoured: str) -> PublicKey:
    primaries: list[list[str]] = []
    fingerprints: list[str] = []
    subkeys: list[str] = []
    user_ids: list[str] = []
    previous = ""
    for line in listing.splitlines():
        fields = line.split(":")
        kind = fields[0]
        if kind == "pub":
            primaries.append(fields)
        elif kind == "fpr" and len(fields) > 9:
            (fingerprints if previous == "pub" else subkeys).append(fields[9].upper())
        elif kind == "uid" and len(fields) > 9:
            user_ids.append(_text(fields[9]))
        if kind != "fpr":
            previous = kind
    if len(primaries) != 1 or len(fingerprints) != 1:
        raise UnreadableKey(
            f"{len(primaries)} public keys where one was expected"
            if len(primaries) != 1
            else "gpg listed no fingerprint for the key"
        )
    pub = primaries[0]
    if len(pub) < 12:
        raise UnreadableKey("gpg's listing of the key is incomplete")
    created = _when(pub[5])
    if created is None:
        raise UnreadableKey("the key has no creation time")
    return PublicKey(
        fingerprint=fingerprints[0],
        key_id=pub[4].upper(),
        algorithm=_algorithm(pub),
        created=created,
        expires=_when(pub[6]),
        revoked=pub[1] == "r",
        user_ids=tuple(user_ids),
        subkey_fingerprints=tuple(subkeys),
        armored=armoured,
    )
