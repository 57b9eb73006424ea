"""Public downloads: a redirect to the build's signed URL, counted as a download event.

    GET /api/apps/{name}/latest                          the newest build, any platform
    GET /api/apps/{name}/latest/{os}/{arch}/{format}     the newest build for one platform
    GET /api/apps/{name}/versions/{version}/{fileName}   one build, for good: a stable URL

The version-pinned route names a build by what identifies it, (app, version, file name), and
builds are immutable (ingest/upload_commands.py), so it always serves the same bytes: the
sha256sums a generated PKGBUILD names (ingest/publish/generate.py). Like the others it is
public: anyone, another developer too, gets the same answer.

These are GETs that write (a `build.downloaded.v1` event per request), so ingest serves them
itself rather than forwarding them to the query service. The event carries a keyed hash of the
client; the builds projection counts it unless the same client's last counted download of that
build is under 30 s old. A client is its network address (as uvicorn gives it: the peer, or
what a trusted proxy forwards), an IPv6 client its /64, which one host can vary at will; not
its User-Agent, which any client can vary at will.

Before redirecting, the build's object is checked against its record (`verify`): bytes that
no longer hash to the recorded SHA-256 are refused (409 build_corrupted), never served or
counted. The filesystem store's signed URL carries the hash and checks it again when fetched.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
from typing import Any

import falcon
import falcon.asgi
import orjson

from base.client_errors import NotFound
from schemas import build_events as e
from schemas.builds import normalize_architecture, normalize_format, normalize_os
from schemas.envelope import new_envelope
from state import builds_reads as q
from state import identity_reads as qi
from state.command_context import CommandContext

log = logging.getLogger(__name__)
REDIRECT_EXPIRES_S = 900
ANY_ARCH = "any"


class NoMatchingBuild(NotFound):
    """404 that lists the platforms the app does have builds for."""

    def __init__(self, message: str, available: list[str]) -> None:
        super().__init__(message, code="no_matching_build")
        self.available = available

    def body(self) -> dict[str, Any]:
        body = super().body()
        body["error"]["available"] = self.available
        return body


def client_id(key: bytes, req: falcon.asgi.Request) -> str:
    """Who is downloading, for the debounce: the client's network, hashed with a server key
    so the log holds no address in the clear (and none can be guessed back)."""
    who = client_network(req.remote_addr or "").encode()
    return hmac.new(key, who, hashlib.sha256).hexdigest()[:32]


def client_network(address: str) -> str:
    """An IPv4 address itself; an IPv6 address's /64 (a host picks its own interface id)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an address (a unix socket's peer): taken as it is
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


async def _app_exists(ctx: CommandContext, name: str) -> None:
    if await asyncio.to_thread(qi.app_named, ctx.db, name) is None:
        raise NotFound(f"no app named {name!r}", field="name")


class _Download:
    def __init__(self, ctx: CommandContext) -> None:
        self._ctx = ctx

    async def _send(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, build: q.AppBuild
    ) -> None:
        await q.check_stored(self._ctx.objects, build)
        downloaded = e.BuildDownloaded(
            build_id=build.id, app=build.app, client=client_id(self._ctx.client_key, req)
        )
        envelope = new_envelope(
            "build.downloaded.v1", e.encode(downloaded), key=build.app, app=build.app
        )
        await self._ctx.log.append("builds", [envelope])
        url = self._ctx.objects.presign_get(
            build.object_key, REDIRECT_EXPIRES_S, filename=build.file_name, sha256=build.sha256
        )
        resp.status = falcon.HTTP_302
        resp.location = url
        resp.cache_control = ["no-store"]
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps({"downloadUrl": url, "version": build.version})


class LatestDownload(_Download):
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, app: str) -> None:
        name = app
        build = await asyncio.to_thread(q.latest_build, self._ctx.db, name)
        if build is None:
            await _app_exists(self._ctx, name)
            raise NoMatchingBuild(f"{name} has no builds yet", [])
        await self._send(req, resp, build)


class PlatformDownload(_Download):
    async def on_get(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        app: str,
        os: str,
        arch: str,
        format: str,
    ) -> None:
        name = app
        db = self._ctx.db
        wanted = f"{os}/{arch}/{format}"
        try:
            os_name = normalize_os(os)
            fmt = normalize_format(format)
            architecture = (
                ANY_ARCH if arch.lower() == ANY_ARCH else normalize_architecture(arch, os_name)
            )
        except ValueError as exc:
            available = await asyncio.to_thread(q.platforms_of, db, name)
            message = f"{wanted}: {exc}; {_listing(name, available)}"
            raise NoMatchingBuild(message, available) from None
        candidates = await asyncio.to_thread(q.newest_for_platform, db, name, os_name, fmt)
        build = _pick(candidates, architecture)
        if build is None:
            available = await asyncio.to_thread(q.platforms_of, db, name)
            if not available:
                await _app_exists(self._ctx, name)
            raise NoMatchingBuild(
                f"no {os_name}/{architecture}/{fmt} build of {name}; {_listing(name, available)}",
                available,
            )
        await self._send(req, resp, build)


class VersionDownload(_Download):
    async def on_get(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        app: str,
        version: str,
        fileName: str,  # the route's {fileName}, as the OpenAPI document names it
    ) -> None:
        file_name = fileName
        build = await asyncio.to_thread(q.build_named, self._ctx.db, app, version, file_name)
        if build is None:
            available = await asyncio.to_thread(q.builds_of_version, self._ctx.db, app, version)
            if not available:
                await _app_exists(self._ctx, app)
                raise NotFound(f"{app} has no build of version {version!r}", field="version")
            names = ", ".join(b.file_name for b in available)
            raise NotFound(
                f"{app} {version} has no file named {file_name!r}; it has: {names}",
                field="fileName",
            )
        await self._send(req, resp, build)


def _pick(candidates: list[q.AppBuild], architecture: str) -> q.AppBuild | None:
    """The newest build of exactly that architecture, else a universal one (which runs
    anywhere); with `any`, the newest of all."""
    if not candidates:
        return None
    if architecture == ANY_ARCH:
        return max(candidates, key=lambda b: (b.uploaded_at, b.id))
    for wanted in (architecture, "universal"):
        for build in candidates:
            if build.architecture == wanted:
                return build
    return None


def _listing(name: str, available: list[str]) -> str:
    if not available:
        return f"{name} has no builds yet"
    return f"{name} has builds for: {', '.join(available)}"
