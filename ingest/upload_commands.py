"""Upload commands: presign, finalize a presigned upload, record a direct upload.

A build of an app is identified by (app, version, file name), stored at
`artifact_key(app, version, fileName)`, and immutable once recorded: uploading the same
triple again is refused (409), except a repeat of the same bytes, which answers with the
recorded build (so a CI job may retry a finalize whose answer it lost).

Apps: an upload names its app (`name`). The caller's own app is used; another developer's is
refused (403); an app nobody has is created for the caller on the first upload recorded for
it, as BuildHut does, and the answer carries the new app's secret, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, get_args

from ingest import identity_commands
from ingest.build_context import BuildContext, object_error
from ingest.errors import ConflictError, Forbidden, Unprocessable
from query import builds as q
from query import identity as qi
from schemas import build_events as e
from schemas.builds import (
    MAX_UPLOAD_BYTES,
    OS,
    UPLOAD_URL_EXPIRES_S,
    artifact_key,
    detect_architecture,
    detect_platform,
    normalize_architecture,
    normalize_format,
    normalize_os,
    validate_file_name,
)
from schemas.envelope import iso_micros, new_envelope, uuid7
from schemas.identity import NAME
from storage.errors import InvalidKey, StorageError
from storage.objects import StoredObject, finalize_upload, validate_key

VERSION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._+-]{0,62}[A-Za-z0-9])?$")
"""Upload versions are free-form (BuildHut: "version string") but must be usable in a key."""

CONTENT_TYPES: Final[dict[str, str]] = {
    "apk": "application/vnd.android.package-archive",
    "deb": "application/vnd.debian.binary-package",
    "rpm": "application/x-rpm",
    "tar.gz": "application/gzip",
    "zip": "application/zip",
    "dmg": "application/x-apple-diskimage",
    "msi": "application/x-msi",
    "exe": "application/vnd.microsoft.portable-executable",
}


@dataclass(frozen=True, slots=True)
class UploadTarget:
    app: str
    version: str
    file_name: str
    key: str
    os: str
    architecture: str
    format: str

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(self.format, "application/octet-stream")


def _text(fields: Mapping[str, object], name: str, *, required: bool) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise Unprocessable(f"{name} is required", field=name, code="missing_field")
        return None
    if not isinstance(value, str):
        raise Unprocessable(f"{name} must be a string", field=name)
    return value


def upload_target(fields: Mapping[str, object]) -> UploadTarget:
    """Validate what an upload names; 422 naming the field at fault."""
    app = _text(fields, "name", required=True)
    assert app is not None
    if not NAME.match(app):
        raise Unprocessable(
            "name (the app name) must be 1-63 characters of a-z, 0-9, '-' or '_'", field="name"
        )
    version = _text(fields, "version", required=True)
    assert version is not None
    if not VERSION.match(version):
        raise Unprocessable(
            "version must be 1-64 characters of letters, digits and . _ + -, starting and "
            "ending with a letter or digit (e.g. 1.0.5)",
            field="version",
        )
    raw_name = _text(fields, "fileName", required=True)
    assert raw_name is not None
    try:
        file_name = validate_file_name(raw_name)
    except ValueError as exc:
        raise Unprocessable(str(exc), field="fileName", code="bad_file_name") from None
    detected = detect_platform(file_name)
    os_name: OS | None = detected.os if detected else None
    if (given_os := _text(fields, "os", required=False)) is not None:
        try:
            os_name = normalize_os(given_os)
        except ValueError as exc:
            raise Unprocessable(str(exc), field="os") from None
    fmt = detected.format if detected else None
    if fmt is None and "." in file_name:
        try:
            fmt = normalize_format(file_name.rsplit(".", 1)[1])
        except ValueError:
            fmt = None
    if os_name is None or fmt is None:
        raise Unprocessable(
            f"cannot tell the platform of {file_name!r} from its extension; use one of "
            ".apk .aab .ipa .AppImage .deb .rpm .flatpak .tar.gz .exe .msi .dmg .pkg "
            f"(or give os, one of {', '.join(get_args(OS))}, for a .zip)",
            field="fileName",
            code="unknown_platform",
        )
    given_arch = _text(fields, "architecture", required=False)
    try:
        arch = (
            normalize_architecture(given_arch, os_name)
            if given_arch is not None
            else detect_architecture(file_name, os_name)
        )
    except ValueError as exc:
        raise Unprocessable(str(exc), field="architecture") from None
    return UploadTarget(
        app=app,
        version=version,
        file_name=file_name,
        key=artifact_key(app, version, file_name),
        os=os_name,
        architecture=arch or "universal",
        format=fmt,
    )


async def check_owner(ctx: BuildContext, developer: str, app: str) -> None:
    """403 when the app is another developer's; an app nobody has is fine (created later)."""
    found = await asyncio.to_thread(qi.app_named, ctx.db, app)
    if found is not None and found.developer != developer:
        raise Forbidden(f"app {app!r} belongs to another developer", field="name")


async def refuse_existing(ctx: BuildContext, target: UploadTarget) -> None:
    if await asyncio.to_thread(q.build_for_key, ctx.db, target.key) is not None:
        raise _exists(target)


def _exists(target: UploadTarget) -> ConflictError:
    return ConflictError(
        f"{target.app} {target.version} already has a build stored as {target.key}; builds "
        "are immutable, upload a new version",
        field="version",
        code="build_exists",
    )


def max_upload(ctx: BuildContext) -> int:
    return min(ctx.settings.max_upload_bytes, MAX_UPLOAD_BYTES)


async def presign(ctx: BuildContext, developer: str, body: Mapping[str, object]) -> dict[str, Any]:
    target = upload_target(body)
    await check_owner(ctx, developer, target.app)
    await refuse_existing(ctx, target)
    url = ctx.objects.presign_put(target.key, UPLOAD_URL_EXPIRES_S, max_bytes=max_upload(ctx))
    return {
        "uploadUrl": url,
        "method": "PUT",
        "s3Key": target.key,
        "expiresIn": UPLOAD_URL_EXPIRES_S,
        "expiresAt": iso_micros(ctx.clock() + UPLOAD_URL_EXPIRES_S * 1_000_000),
        "maxBytes": max_upload(ctx),
    }


async def finalize(
    ctx: BuildContext, developer: str, body: Mapping[str, object]
) -> tuple[int, dict[str, Any]]:
    """Record a build PUT through a presigned URL: (HTTP status, answer)."""
    target = upload_target(body)
    s3_key = _text(body, "s3Key", required=True)
    assert s3_key is not None
    try:
        validate_key(s3_key)
    except InvalidKey as exc:
        raise Unprocessable(
            f"s3Key is not a valid key: {exc}", field="s3Key", code="bad_key"
        ) from None
    if s3_key != target.key:
        raise Unprocessable(
            "s3Key does not belong to this name, version and fileName: pass the s3Key that "
            "/api/upload/presign returned for them",
            field="s3Key",
            code="foreign_key",
        )
    await check_owner(ctx, developer, target.app)
    try:
        stored = await finalize_upload(ctx.objects, target.key, max_bytes=max_upload(ctx))
    except StorageError as exc:
        raise object_error(exc, "s3Key", max_upload(ctx)) from None
    return await record(ctx, developer, target, stored)


async def record(
    ctx: BuildContext, developer: str, target: UploadTarget, stored: StoredObject
) -> tuple[int, dict[str, Any]]:
    """Record a stored build as uploaded (creating the app on its first build)."""
    created: dict[str, Any] | None = None
    if await asyncio.to_thread(qi.app_named, ctx.db, target.app) is None:
        identity = identity_commands.Context(ctx.log, ctx.db, ctx.settings)
        with contextlib.suppress(ConflictError):  # created meanwhile: checked below whose
            created = await identity_commands.create_app(identity, target.app, developer)
    async with ctx.command_lock(f"app:{target.app}"):
        await ctx.catch_up()
        app = await asyncio.to_thread(qi.app_named, ctx.db, target.app)
        if app is None or app.developer != developer:
            raise Forbidden(f"app {target.app!r} belongs to another developer", field="name")
        existing = await asyncio.to_thread(q.build_for_key, ctx.db, target.key)
        if existing is not None:
            if (existing.sha256, existing.size) == (stored.sha256, stored.size):
                return 200, existing.summary()
            raise _exists(target)
        uploaded = e.BuildUploaded(
            id=uuid7(),
            app=target.app,
            developer=developer,
            version=target.version,
            file_name=target.file_name,
            object_key=target.key,
            os=target.os,
            architecture=target.architecture,
            format=target.format,
            size=stored.size,
            sha256=stored.sha256,
            content_type=stored.content_type,
        )
        envelope = new_envelope(
            "build.uploaded.v1", e.encode(uploaded), key=target.app, app=target.app
        )
        await ctx.log.append("builds", [envelope])
        await ctx.catch_up()
    build = await asyncio.to_thread(q.build_for_key, ctx.db, target.key)
    assert build is not None, "the projection has caught up with our own write"
    answer = build.summary()
    if created is not None:
        answer["appCreated"] = created
    return 201, answer
