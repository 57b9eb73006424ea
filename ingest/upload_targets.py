"""What an upload names: its app, version and file (validated, with the platform they imply)
and the object key it is stored under.

Each upload has a key of its own, `apps/<app>/<version>/<id>/<file>` (objects are written
once, so no upload may land on another's key); a presigned one is PUT to its staging key,
`uploads/apps/…` (the presign's `s3Key`), and becomes the build's key when finalized. The id
is a nonce and a MAC of it with the developer, app, version and file name under a server key
(`CommandContext.upload_key`): a key is bound to the developer it was issued to, and
finalizing anyone else's is refused (422 foreign_key).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, get_args

from base.client_errors import Unprocessable
from schemas.builds import (
    OS,
    artifact_key,
    detect_architecture,
    detect_platform,
    normalize_architecture,
    normalize_format,
    normalize_os,
    validate_file_name,
)
from schemas.identity import NAME
from state.command_context import CommandContext
from storage.errors import InvalidKey
from storage.objects import STAGING_PREFIX, validate_key

VERSION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._+-]{0,62}[A-Za-z0-9])?$")
"""Upload versions are free-form (BuildHut: "version string") but must be usable in a key."""
UPLOAD_ID = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{20})$")
"""An upload's key segment: a nonce, then the MAC binding it to its developer."""

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


def text(fields: Mapping[str, object], name: str, *, required: bool) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise Unprocessable(f"{name} is required", field=name, code="missing_field")
        return None
    if not isinstance(value, str):
        raise Unprocessable(f"{name} must be a string", field=name)
    return value


def upload_target(
    ctx: CommandContext, developer: str, fields: Mapping[str, object]
) -> UploadTarget:
    """Validate what an upload names (422 naming the field at fault), under a new key of the
    developer's."""
    app = text(fields, "name", required=True)
    assert app is not None
    if not NAME.match(app):
        raise Unprocessable(
            "name (the app name) must be 1-63 characters of a-z, 0-9, '-' or '_'", field="name"
        )
    version = text(fields, "version", required=True)
    assert version is not None
    if not VERSION.match(version):
        raise Unprocessable(
            "version must be 1-64 characters of letters, digits and . _ + -, starting and "
            "ending with a letter or digit (e.g. 1.0.5)",
            field="version",
        )
    raw_name = text(fields, "fileName", required=True)
    assert raw_name is not None
    try:
        file_name = validate_file_name(raw_name)
    except ValueError as exc:
        raise Unprocessable(str(exc), field="fileName", code="bad_file_name") from None
    detected = detect_platform(file_name)
    os_name: OS | None = detected.os if detected else None
    if (given_os := text(fields, "os", required=False)) is not None:
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
    given_arch = text(fields, "architecture", required=False)
    try:
        arch = (
            normalize_architecture(given_arch, os_name)
            if given_arch is not None
            else detect_architecture(file_name, os_name)
        )
    except ValueError as exc:
        raise Unprocessable(str(exc), field="architecture") from None
    names = (developer, app, version, file_name)
    return UploadTarget(
        app=app,
        version=version,
        file_name=file_name,
        key=_new_key(ctx, *names),
        os=os_name,
        architecture=arch or "universal",
        format=fmt,
    )


def _upload_id(ctx: CommandContext, nonce: str, *names: str) -> str:
    message = "\0".join((nonce, *names)).encode()
    mac = hmac.new(ctx.upload_key, message, hashlib.sha256).hexdigest()[:20]
    return f"{nonce}-{mac}"


def _new_key(ctx: CommandContext, developer: str, app: str, version: str, file_name: str) -> str:
    upload_id = _upload_id(ctx, secrets.token_hex(8), developer, app, version, file_name)
    return artifact_key(app, version, upload_id, file_name)


def issued(ctx: CommandContext, developer: str, target: UploadTarget, s3_key: str) -> UploadTarget:
    """The target under the build key of `s3_key` (a presign's staging key, or the build key
    an upload answered with), if it was issued to `developer` for it; 422 if not."""
    try:
        validate_key(s3_key)
    except InvalidKey as exc:
        raise Unprocessable(
            f"s3Key is not a valid key: {exc}", field="s3Key", code="bad_key"
        ) from None
    key = s3_key.removeprefix(STAGING_PREFIX)
    segments = key.split("/")
    found = UPLOAD_ID.match(segments[3]) if len(segments) == 5 else None
    if found is not None:
        app, version, file_name = target.app, target.version, target.file_name
        upload_id = _upload_id(ctx, found.group(1), developer, app, version, file_name)
        if hmac.compare_digest(key, artifact_key(app, version, upload_id, file_name)):
            return dataclasses.replace(target, key=key)
    raise Unprocessable(
        "s3Key was not issued to you for this name, version and fileName: pass the s3Key "
        "that /api/upload/presign returned for them",
        field="s3Key",
        code="foreign_key",
    )
