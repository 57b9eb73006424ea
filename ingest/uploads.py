"""BuildHut uploads over HTTP (bearer token):

    POST /api/upload/presign   {fileName, name, version}       -> {uploadUrl, s3Key, ...}
    POST /api/upload           JSON {name, version, fileName, s3Key[, os, architecture]}
                               or multipart/form-data: name, version[, os, architecture,
                               fileName], then the `file` part last, streamed to storage

A direct upload is streamed straight into the object store (never held whole in memory) and
cut off at the size limit, in which case nothing of it is kept (413); on a full disk likewise
(507). Part headers must be UTF-8 (RFC 7578): others are a 400, as is any malformed form.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable
from typing import Any

import falcon
import falcon.asgi

from base.client_errors import (
    BadRequest,
    HutchError,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from ingest import upload_commands as commands
from ingest.upload_targets import UploadTarget, upload_target
from state import builds_reads as q
from state.command_context import CommandContext, object_error
from storage.errors import StorageError
from storage.objects import StoredObject
from web.auth import Authenticator, Developer
from web.body import media_type, read_json_object, send_json

FORM_OVERHEAD = 64 * 1024
"""What a multipart body may carry besides the file: boundaries, headers, small fields."""
FIELDS = ("name", "version", "os", "architecture", "fileName")
MAX_FIELD_CHARS = 1024


class Presign:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        body = await read_json_object(req)
        send_json(resp, 200, await commands.presign(self._ctx, developer, body))


class Upload:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        kind = media_type(req)
        if kind == "multipart/form-data":
            status, answer = await self._direct(req, developer)
        elif kind in ("", "application/json"):
            body = await read_json_object(req)
            status, answer = await commands.finalize(self._ctx, developer, body)
        else:
            raise UnsupportedMediaType(
                "send JSON (finalize a presigned upload) or multipart/form-data (direct upload)",
                field="Content-Type",
            )
        send_json(resp, status, answer)

    async def _direct(
        self, req: falcon.asgi.Request, caller: Developer
    ) -> tuple[int, dict[str, Any]]:
        developer = caller.name
        limit = commands.max_upload(self._ctx)
        length = req.content_length
        if length is not None and length > limit + FORM_OVERHEAD:
            raise PayloadTooLarge(
                f"the upload is larger than the {limit}-byte limit; nothing was stored",
                field="file",
                code="too_large",
            )
        form: AsyncIterable[Any] = await req.get_media()
        fields: dict[str, str] = {}
        target: UploadTarget | None = None
        stored: StoredObject | None = None
        try:
            async for part in form:
                name = _part_header(part, "name")
                if stored is not None:
                    raise Unprocessable(
                        "the file must be the last field of the form (send name and version "
                        "first); nothing was recorded",
                        field=name or "file",
                        code="file_not_last",
                    )
                if name == "file":
                    filename = _part_header(part, "filename")
                    fields.setdefault("fileName", filename or "")
                    target = upload_target(self._ctx, developer, fields)
                    await commands.check_owner(self._ctx, developer, target.app)
                    await commands.refuse_existing(self._ctx, target)
                    try:
                        stored = await self._ctx.objects.put_stream(
                            target.key,
                            part.stream,
                            max_bytes=limit,
                            content_type=target.content_type,
                        )
                    except StorageError as exc:
                        raise object_error(exc, "file", limit) from None
                elif name in FIELDS:
                    fields[name] = await _field_text(part)
            if stored is None or target is None:
                raise Unprocessable(
                    "no file: send the build in the `file` field (or use /api/upload/presign)",
                    field="file",
                    code="missing_field",
                )
            return await commands.record(self._ctx, caller, target, stored)
        except (HutchError, StorageError, falcon.HTTPError):
            if stored is not None and target is not None:
                await self._discard(target.key)
            raise

    async def _discard(self, key: str) -> None:
        """Remove what this request stored (under a key of its own), unless its build was
        recorded all the same (appended before something after it failed)."""
        if await asyncio.to_thread(q.build_for_key, self._ctx.db, key) is None:
            with contextlib.suppress(StorageError):
                await self._ctx.objects.delete(key)


def _part_header(part: Any, attribute: str) -> str | None:
    """The part's `name` or `filename` from its Content-Disposition, which Falcon decodes as
    UTF-8 when first asked, raising on bytes that are not."""
    try:
        value: str | None = getattr(part, attribute)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(
            f"the {attribute} in a part's Content-Disposition is not UTF-8 text; nothing was "
            "stored",
            field=attribute,
            code="bad_multipart",
        ) from None
    return value


async def _field_text(part: Any) -> str:
    data: bytes = await part.stream.read(MAX_FIELD_CHARS + 1)
    if len(data) > MAX_FIELD_CHARS:
        raise Unprocessable(f"{part.name} is too long", field=part.name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unprocessable(f"{part.name} is not UTF-8 text", field=part.name) from None
