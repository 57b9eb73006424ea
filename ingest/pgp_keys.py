"""POST /api/pgp/fetch-key: a public key from the keyserver, read and checked.

    POST /api/pgp/fetch-key   JSON, exactly one of
                              {"fingerprint": "40 hex digits (spaces allowed)"}
                              {"keyId": "16 hex digits"}  {"email": "someone@example.org"}
        -> 200 {fingerprint, keyId, algorithm, created, expires, revoked, userIds, armored}

A developer's bearer token (full access) or browser session. It changes nothing and stores
nothing: the key is fetched (base/keyserver.py: VKS, through the SSRF guard, with time and
size limits), read with gpg (base/openpgp_keys.py), and checked against what was asked:
the fingerprint or key id must be the key's own or one of its subkeys', the e-mail address
one of its user ids', or the keyserver answered another key (502 `keyserver_mismatch`). What
the keyserver sent that is not one key gpg can read is a 502 `bad_key`.

A field of the wrong JSON type is a 400 naming it; a value that is not a fingerprint, key id
or address, or not exactly one of them, a 422. Only v4 fingerprints (40 hex digits) are taken:
the gpg that reads the keys here (2.2) does not read v5 or v6 keys.
"""

from __future__ import annotations

import re
from typing import Any

import falcon.asgi

from base.client_errors import BadGateway, BadRequest, ServiceUnavailable, Unprocessable
from base.keyserver import Keyserver
from base.openpgp_keys import GpgMissing, PublicKey, UnreadableKey, read_key
from web.auth import Authenticator
from web.body import read_json_object, send_json

FIELDS = ("fingerprint", "keyId", "email")
MAX_EMAIL_CHARS = 254
RETRY_AFTER_S = "5"
_FINGERPRINT = re.compile(r"[0-9A-F]{40}")
_KEY_ID = re.compile(r"[0-9A-F]{16}")
_EMAIL = re.compile(r"[^@\s<>()\[\],;:\"\\/]+@[^@\s<>()\[\],;:\"\\/]+\.[^@\s<>()\[\],;:\"\\/]+")


class PgpKeyFetch:
    def __init__(self, auth: Authenticator, keyserver: Keyserver) -> None:
        self._auth = auth
        self._keyserver = keyserver

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self._auth.developer(req)
        body = await read_json_object(req)
        name, value = _reference(body)
        if name == "fingerprint":
            data = await self._keyserver.by_fingerprint(value)
        elif name == "keyId":
            data = await self._keyserver.by_key_id(value)
        else:
            data = await self._keyserver.by_email(value)
        key = await _read(data)
        _check(key, name, value)
        send_json(resp, 200, answer(key))


def _reference(body: dict[str, Any]) -> tuple[str, str]:
    """(which field, its normalised value): exactly one of FIELDS."""
    given = [name for name in FIELDS if body.get(name) is not None]
    if len(given) != 1:
        raise Unprocessable(
            "send exactly one of fingerprint, keyId or email"
            + (f" (got {', '.join(given)})" if given else ""),
            field=given[1] if len(given) > 1 else "fingerprint",
            code="one_reference",
        )
    name = given[0]
    value = body[name]
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string", field=name, code="bad_type")
    if name == "email":
        email = value.strip()
        if len(email) > MAX_EMAIL_CHARS or not _EMAIL.fullmatch(email):
            raise Unprocessable(
                f"email must be an e-mail address (at most {MAX_EMAIL_CHARS} characters)",
                field=name,
                code="bad_email",
            )
        return name, email
    digits = "".join(value.split()).upper().removeprefix("0X")
    if name == "keyId" and not _KEY_ID.fullmatch(digits):
        raise Unprocessable(
            "keyId must be 16 hex digits (a long key id; spaces allowed)",
            field=name,
            code="bad_key_id",
        )
    if name == "fingerprint" and not _FINGERPRINT.fullmatch(digits):
        raise Unprocessable(
            "fingerprint must be 40 hex digits, a v4 key's (spaces allowed); v5 and v6 "
            "fingerprints are not supported",
            field=name,
            code="bad_fingerprint",
        )
    return name, digits


async def _read(data: bytes) -> PublicKey:
    try:
        return await read_key(data)
    except UnreadableKey as exc:
        raise BadGateway(
            f"the keyserver's answer is not one OpenPGP public key: {exc}", code="bad_key"
        ) from None
    except GpgMissing as exc:
        raise ServiceUnavailable(
            str(exc), code="gpg_unavailable", headers={"Retry-After": RETRY_AFTER_S}
        ) from None


def _check(key: PublicKey, name: str, value: str) -> None:
    """Refuse a key that is not the one asked for."""
    if name == "fingerprint":
        ok = value in (key.fingerprint, *key.subkey_fingerprints)
    elif name == "keyId":
        ok = any(f.endswith(value) for f in (key.fingerprint, *key.subkey_fingerprints))
    else:
        ok = value.casefold() in key.emails()
    if not ok:
        raise BadGateway(
            f"the keyserver answered key {key.fingerprint}, which does not match the {name} "
            "asked for",
            code="keyserver_mismatch",
        )


def answer(key: PublicKey) -> dict[str, Any]:
    return {
        "fingerprint": key.fingerprint,
        "keyId": key.key_id,
        "algorithm": key.algorithm,
        "created": key.created,
        "expires": key.expires,
        "revoked": key.revoked,
        "userIds": list(key.user_ids),
        "armored": key.armored,
    }
