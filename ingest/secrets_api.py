"""CI job secrets over HTTP (bearer token with the scope `secrets:write`, or a full-access one):

    POST   /api/secrets         JSON {name, type, path?, mode?, data}  (data: base64)
                                or multipart/form-data: name, type[, path, mode], then `file`
                                -> 201 the secret's summary: id, name, type, path, mode, createdAt
    DELETE /api/secrets/{id}    -> {"deleted": id}; another developer's secret is a 404

`type` is file | ssh_key | pgp_key; a file needs `path` (in the job's home: `~/x` or `x`);
`mode` is an integer or octal digits as text ("0600"; default 0600 for keys, 0644 for files).
A field of the wrong JSON type, or `data` that is not base64, is a 400 naming it; a value the
command cannot accept is a 422 (413 for a secret over 64 KiB). No answer carries the secret.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterable
from typing import Any

import falcon.asgi

from base.client_errors import BadRequest, HutchError, PayloadTooLarge, UnsupportedMediaType
from ingest import secret_commands as commands
from schemas.secrets import MAX_SECRET_BYTES
from state.command_context import CommandContext
from web.auth import Authenticator
from web.body import media_type, read_json_object, send_json

FIELDS = ("name", "type", "path", "mode")
MAX_FIELD_BYTES = 1024
MAX_PARTS = 8
MAX_JSON_BYTES = 4 * (MAX_SECRET_BYTES // 3 + 1) + 2 * 1024 + len(FIELDS) * MAX_FIELD_BYTES
"""The base64 of the largest secret, its line breaks (76 characters a line) and the fields."""
_SPACE = re.compile(rb"\s+")


class SecretCommands:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req, scope="secrets:write")
        kind = media_type(req)
        if kind == "multipart/form-data":
            fields, data = await _form(req)
        elif kind in ("", "application/json") or kind.endswith("+json"):
            fields, data = _json(await read_json_object(req, MAX_JSON_BYTES))
        else:
            raise UnsupportedMediaType(
                "send JSON (data as base64) or multipart/form-data (the secret as `file`)",
                field="Content-Type",
            )
        result = await commands.add_secret(
            self._ctx,
            developer,
            fields.get("name"),
            fields.get("type"),
            data,
            fields.get("path"),
            fields.get("mode"),
        )
        send_json(resp, 201, result)


class SecretDeletion:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_delete(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, secret_id: str
    ) -> None:
        developer = await self._auth.developer(req, scope="secrets:write")
        send_json(resp, 200, await commands.delete_secret(self._ctx, developer, secret_id))


def _json(body: dict[str, Any]) -> tuple[dict[str, Any], bytes | None]:
    fields: dict[str, Any] = {}
    for name in FIELDS:
        if name not in body:
            continue
        value = body[name]
        integer = isinstance(value, int) and not isinstance(value, bool)
        if not isinstance(value, str) and not (name == "mode" and integer):
            kind = "an integer or octal digits as a string" if name == "mode" else "a string"
            raise BadRequest(f"{name} must be {kind}", field=name, code="bad_type")
        fields[name] = value
    data = body.get("data")
    if data is None:
        return fields, None
    if not isinstance(data, str):
        raise BadRequest(
            "data must be a string: the secret as base64", field="data", code="bad_type"
        )
    return fields, _base64(data.encode("ascii", "replace"))


def _base64(text: bytes) -> bytes:
    try:
        return base64.b64decode(_SPACE.sub(b"", text), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(
            "data is not base64 (the standard alphabet, padded; line breaks are fine)",
            field="data",
            code="bad_base64",
        ) from None


async def _form(req: falcon.asgi.Request) -> tuple[dict[str, Any], bytes | None]:
    length = req.content_length
    if length is not None and length > MAX_SECRET_BYTES + MAX_PARTS * MAX_FIELD_BYTES:
        raise PayloadTooLarge(
            f"the secret is over the {MAX_SECRET_BYTES}-byte limit; nothing was stored",
            field="file",
            code="too_large",
        )
    form: AsyncIterable[Any] = await req.get_media()
    fields: dict[str, Any] = {}
    data: bytes | None = None
    parts = 0
    async for part in form:
        parts += 1
        name = _part_name(part)
        if parts > MAX_PARTS or (name not in FIELDS and name != "file"):
            raise BadRequest(
                f"unexpected form field {name!r}: send {', '.join(FIELDS)} and `file`",
                field=name,
                code="bad_multipart",
            )
        if name == "file":
            # One byte more than allowed: the check refuses before the rest is read.
            try:
                data = commands.check_data(await part.stream.read(MAX_SECRET_BYTES + 1))
            except HutchError as exc:
                exc.field = "file"  # the form's name for `data`
                raise
            continue
        raw: bytes = await part.stream.read(MAX_FIELD_BYTES + 1)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        if len(raw) > MAX_FIELD_BYTES or not text:
            raise BadRequest(
                f"{name} must be UTF-8 text of 1 to {MAX_FIELD_BYTES} bytes",
                field=name,
                code="bad_type",
            )
        fields[name] = text
    return fields, data


def _part_name(part: Any) -> str:
    try:
        name = part.name
    except (UnicodeDecodeError, ValueError):
        name = None
    if not isinstance(name, str):
        raise BadRequest(
            "a form part without a UTF-8 name in its Content-Disposition",
            field="name",
            code="bad_multipart",
        )
    return name
