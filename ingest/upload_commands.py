"""Upload commands: presign, finalize a presigned upload, record a direct upload.

A build of an app is identified by (app, version, file name) and immutable once recorded:
uploading the same triple again is refused (409), except a repeat of the same bytes, which
answers with the recorded build (so a CI job may retry a finalize whose answer it lost).
Each upload is stored under a key of its own, bound to its developer (upload_targets.py),
and objects are written once, so no other upload, however it races, can replace its bytes.
A presigned URL writes only the upload's staging key (a plain PUT, as any client sends it,
repeatable while the URL lasts); finalize makes the build's object from it, write-once, and
records the hash of exactly those bytes. Nothing serves a staging key, so a PUT after
finalize changes nothing served: it stages bytes nobody reads (a retried finalize drops them).

Apps: an upload names its app (`name`). The caller's own app is used; another developer's is
refused (403). A name nobody has becomes the caller's app, as BuildHut does, and the answer
carries its secret, once, under `appCreated`: a presign creates it there and then (under the
app's command lock), so the URL it answers with only ever writes into an app its caller
owns; a direct upload creates it when the build is recorded, so a failed one creates none.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from base.client_errors import ConflictError, Forbidden
from ingest import identity_commands
from ingest.upload_targets import UploadTarget, issued, text, upload_target
from schemas import build_events as e
from schemas.builds import MAX_UPLOAD_BYTES, UPLOAD_URL_EXPIRES_S
from schemas.envelope import iso_micros, new_envelope, uuid7
from state import builds_reads as q
from state import identity_reads as qi
from state.command_context import BUILDS, IDENTITY, CommandContext, object_error
from storage.errors import StorageError
from storage.objects import StoredObject, finalize_upload, staging_key
from web.auth import Developer


async def check_owner(ctx: CommandContext, developer: str, app: str) -> None:
    """403 when the app is another developer's; an app nobody has is fine (created later)."""
    found = await asyncio.to_thread(qi.app_named, ctx.db, app)
    if found is not None and found.developer != developer:
        raise _theirs(app)


async def claim_app(ctx: CommandContext, caller: Developer, app: str) -> dict[str, Any] | None:
    """Make sure `app` is the caller's: 403 if another's; one nobody has is created for them
    now (the answer to show once), atomically, whoever else tries at the same time."""
    found = await asyncio.to_thread(qi.app_named, ctx.db, app)
    if found is not None:
        if found.developer != caller.name:
            raise _theirs(app)
        return None
    identity = ctx
    try:
        return await identity_commands.create_app(identity, app, caller)
    except ConflictError:  # created meanwhile: by whom?
        await check_owner(ctx, caller.name, app)
        return None


def _theirs(app: str) -> Forbidden:
    return Forbidden(f"app {app!r} belongs to another developer", field="name")


async def refuse_existing(ctx: CommandContext, target: UploadTarget) -> None:
    found = await asyncio.to_thread(
        q.build_named, ctx.db, target.app, target.version, target.file_name
    )
    if found is not None:
        raise _exists(target)


def _exists(target: UploadTarget) -> ConflictError:
    return ConflictError(
        f"{target.app} {target.version} already has a build named {target.file_name}; "
        "builds are immutable, upload a new version",
        field="version",
        code="build_exists",
    )


def max_upload(ctx: CommandContext) -> int:
    return min(ctx.settings.max_upload_bytes, MAX_UPLOAD_BYTES)


async def presign(
    ctx: CommandContext, caller: Developer, body: Mapping[str, object]
) -> dict[str, Any]:
    target = upload_target(ctx, caller.name, body)
    created = await claim_app(ctx, caller, target.app)
    await refuse_existing(ctx, target)
    staged = staging_key(target.key)
    url = ctx.objects.presign_put(staged, UPLOAD_URL_EXPIRES_S, max_bytes=max_upload(ctx))
    answer = {
        "uploadUrl": url,
        "method": "PUT",
        "s3Key": staged,
        "expiresIn": UPLOAD_URL_EXPIRES_S,
        "expiresAt": iso_micros(ctx.clock() + UPLOAD_URL_EXPIRES_S * 1_000_000),
        "maxBytes": max_upload(ctx),
    }
    if created is not None:
        answer["appCreated"] = created
    return answer


async def finalize(
    ctx: CommandContext, caller: Developer, body: Mapping[str, object]
) -> tuple[int, dict[str, Any]]:
    """Record a build PUT through a presigned URL: (HTTP status, answer)."""
    s3_key = text(body, "s3Key", required=True)
    assert s3_key is not None
    target = upload_target(ctx, caller.name, body)
    await check_owner(ctx, caller.name, target.app)
    target = issued(ctx, caller.name, target, s3_key)
    recorded = await asyncio.to_thread(q.build_for_key, ctx.db, target.key)
    if recorded is not None and recorded.developer == caller.name:
        # A retry whose first answer was lost: answered alike, and whatever was PUT since
        # (staged, never served) is dropped.
        with contextlib.suppress(StorageError):
            await ctx.objects.delete(staging_key(target.key))
        return 200, recorded.summary()
    try:
        stored = await finalize_upload(
            ctx.objects, target.key, max_bytes=max_upload(ctx), content_type=target.content_type
        )
    except StorageError as exc:
        raise object_error(exc, "s3Key", max_upload(ctx)) from None
    return await record(ctx, caller, target, stored)


async def record(
    ctx: CommandContext, caller: Developer, target: UploadTarget, stored: StoredObject
) -> tuple[int, dict[str, Any]]:
    """Record a stored build as uploaded (creating the app on its first build)."""
    created: dict[str, Any] | None = None
    if await asyncio.to_thread(qi.app_named, ctx.db, target.app) is None:
        identity = ctx
        with contextlib.suppress(ConflictError):  # created meanwhile: checked below whose
            created = await identity_commands.create_app(identity, target.app, caller)
    async with ctx.command(f"app:{target.app}", IDENTITY, BUILDS):
        app = await asyncio.to_thread(qi.app_named, ctx.db, target.app)
        if app is None or app.developer != caller.name:
            raise _theirs(target.app)
        existing = await asyncio.to_thread(
            q.build_named, ctx.db, target.app, target.version, target.file_name
        )
        if existing is not None:
            if existing.object_key != target.key:  # a second copy, not the build's: drop it
                with contextlib.suppress(StorageError):
                    await ctx.objects.delete(target.key)
            if (existing.sha256, existing.size) == (stored.sha256, stored.size):
                return 200, existing.summary()
            raise _exists(target)
        uploaded = e.BuildUploaded(
            id=uuid7(),
            app=target.app,
            developer=caller.name,
            version=target.version,
            file_name=target.file_name,
            object_key=target.key,
            os=target.os,
            architecture=target.architecture,
            format=target.format,
            size=stored.size,
            sha256=stored.sha256,
            content_type=stored.content_type,
            etag=stored.etag,
        )
        envelope = new_envelope(
            "build.uploaded.v1", e.encode(uploaded), key=target.app, app=target.app
        )
        await ctx.append("builds", [envelope], IDENTITY, BUILDS)
    build = await asyncio.to_thread(q.build_for_key, ctx.db, target.key)
    assert build is not None, "the projection has caught up with our own write"
    answer = build.summary()
    if created is not None:
        answer["appCreated"] = created
    return 201, answer
