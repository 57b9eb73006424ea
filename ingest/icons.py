"""App icons: `PUT /api/apps/{name}/icon` (the app's owner, the image as the body).

The type is decided by the image's own first bytes, not by what the client claims, and only
raster formats browsers render without running anything are taken (PNG, JPEG, GIF, WebP; no
SVG, which can carry script). The object key is content-addressed
(`img/<app>-<sha256 prefix>.<ext>`), so `GET /api/img/{key}` can be cached for good.
"""

from __future__ import annotations

import contextlib
import hashlib

import falcon
import falcon.asgi
import orjson

from base.client_errors import BadRequest, UnsupportedMediaType
from schemas import build_events as e
from schemas.builds import IMAGE_PREFIX, image_url
from schemas.envelope import new_envelope
from state.command_context import BUILDS, IDENTITY, CommandContext
from storage.errors import AlreadyExists
from web.auth import Authenticator
from web.body import read_body

MAX_ICON_BYTES = 1 << 20


def sniff_image(data: bytes) -> tuple[str, str] | None:
    """(content type, extension) of a PNG, JPEG, GIF or WebP image, from its magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", "jpg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif", "gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    return None


class AppIcon:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, app: str) -> None:
        name = app
        developer = await self._auth.developer(req)
        await self._auth.owned_app(developer.name, name)
        data = await read_body(req, MAX_ICON_BYTES)
        if not data:
            raise BadRequest("the body is empty; send the icon image", code="empty_body")
        kind = sniff_image(data)
        if kind is None:
            raise UnsupportedMediaType(
                "an icon must be a PNG, JPEG, GIF or WebP image", field="Content-Type"
            )
        content_type, ext = kind
        key = f"{IMAGE_PREFIX}{name}-{hashlib.sha256(data).hexdigest()[:16]}.{ext}"
        # Objects are written once; the key names the content, so one there is this icon.
        with contextlib.suppress(AlreadyExists):
            await self._ctx.objects.put_stream(
                key, [data], max_bytes=MAX_ICON_BYTES, content_type=content_type
            )
        icon = e.AppIconSet(app=name, object_key=key, content_type=content_type)
        async with self._ctx.command(f"app:{name}"):
            envelope = new_envelope("app.icon_set.v1", e.encode(icon), key=name, app=name)
            await self._ctx.append("apps", [envelope], IDENTITY, BUILDS)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(
            {"app": name, "iconUrl": image_url(self._ctx.settings.public_url, key)}
        )
