"""Public app info and images, and the owner's build listing with download counts.

    GET /api/app/{id}            public: the app's latest build + a signed download URL
    GET /api/apps/{name}/builds  the owner: builds, newest first, with downloads per day
    GET /api/img/{key}           public: an uploaded image (app icon)

`{id}` of /api/app is the app's name (apps are named, as in every other BuildHut route).
Its answer may be cached for 5 minutes (Cache-Control), and this process keeps it for as long,
checking on each hit, with one indexed lookup, that no newer build has been uploaded since:
an upload handled by any other process invalidates it at once. The signed URL in it is valid
for an hour, so a cached copy never hands out a dead link. On every answer, cached or not,
the build's object is checked against its record (state/builds_reads.py `check_stored`): bytes
that no longer hash to the recorded SHA-256 are a 409, and no URL to them is handed out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

import falcon
import falcon.asgi
import orjson

from base.client_errors import NotFound
from schemas.builds import IMAGE_PREFIX, image_url
from schemas.envelope import iso_micros, micros_to_datetime, now_micros
from state import builds_reads as q
from state import identity_reads as qi
from storage.errors import InvalidKey
from storage.errors import NotFound as MissingObject
from storage.objects import ObjectStore, validate_key
from storage.relational import Relational
from web.auth import Authenticator
from web.query_string import limit, offset

CACHE_S = 300
DOWNLOAD_URL_EXPIRES_S = 3600
MAX_CACHED_APPS = 10_000


class AppInfo:
    def __init__(
        self,
        db: Relational,
        objects: ObjectStore,
        public_url: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._objects = objects
        self._public_url = public_url
        self._clock = clock
        self._cache: dict[str, tuple[float, q.AppBuild, bytes]] = {}

    def _answer(self, name: str) -> tuple[q.AppBuild, bytes] | None:
        """The app's latest build and its JSON body; None when it has none."""
        build = q.latest_build(self._db, name)
        if build is None:
            return None
        icon = q.icon_of(self._db, name)
        body = {
            "app": build.app,
            "version": build.version,
            "tag": build.version,
            "downloadUrl": self._objects.presign_get(
                build.object_key,
                DOWNLOAD_URL_EXPIRES_S,
                filename=build.file_name,
                sha256=build.sha256,
            ),
            "uploadedAt": iso_micros(build.uploaded_at),
            "fileName": build.file_name,
            "os": build.os,
            "architecture": build.architecture,
            "format": build.format,
            "size": build.size,
            "sha256": build.sha256,
            "iconUrl": None if icon is None else image_url(self._public_url, icon.object_key),
        }
        return build, orjson.dumps(body)

    def _lookup(self, name: str) -> tuple[q.AppBuild, bytes] | None:
        now = self._clock()
        cached = self._cache.get(name)
        if cached is not None:
            expires, build, body = cached
            if now < expires and q.latest_build_id(self._db, name) == build.id:
                return build, body
        answer = self._answer(name)
        if answer is None:
            self._cache.pop(name, None)
            return None
        if len(self._cache) >= MAX_CACHED_APPS:
            self._cache.clear()
        self._cache[name] = (now + CACHE_S, *answer)
        return answer

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        answer = await asyncio.to_thread(self._lookup, id)
        if answer is None:
            if await asyncio.to_thread(qi.app_named, self._db, id) is None:
                raise NotFound(f"no app named {id!r}", field="id")
            raise NotFound(f"{id} has no builds yet", field="id", code="no_builds")
        build, body = answer
        await q.check_stored(self._objects, build)
        resp.cache_control = ["public", f"max-age={CACHE_S}"]
        resp.content_type = falcon.MEDIA_JSON
        resp.data = body


class AppBuildListing:
    def __init__(self, db: Relational, auth: Authenticator) -> None:
        self._db = db
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, app: str) -> None:
        name = app
        developer = await self._auth.developer(req)
        await self._auth.owned_app(developer.name, name)
        page_size = limit(req, default=50, maximum=100)
        skip = offset(req)
        days = limit(req, default=30, maximum=366, name="days")
        since = (micros_to_datetime(now_micros()) - timedelta(days=days - 1)).date().isoformat()

        def read() -> tuple[int, list[q.AppBuild], dict[str, list[tuple[str, int]]]]:
            total, builds = q.builds_of(self._db, name, page_size, skip)
            return total, builds, q.daily_downloads(self._db, [b.id for b in builds], since)

        total, builds, daily = await asyncio.to_thread(read)
        resp.data = orjson.dumps(
            {
                "app": name,
                "builds": [
                    {
                        **b.summary(),
                        "downloads": b.downloads,
                        "downloadsByDay": [{"day": d, "count": n} for d, n in daily[b.id]],
                    }
                    for b in builds
                ],
                "total": total,
                "limit": page_size,
                "offset": skip,
                "days": days,
            }
        )


class Images:
    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, key: str) -> None:
        try:
            stream = await self._objects.open(validate_key(IMAGE_PREFIX + key))
        except (InvalidKey, MissingObject):
            raise NotFound(f"no image {key!r}", field="key") from None
        resp.content_type = stream.info.content_type
        resp.content_length = stream.info.size
        resp.cache_control = ["public", "max-age=31536000", "immutable"]  # content-addressed
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Content-Security-Policy", "default-src 'none'; sandbox")
        resp.stream = stream.chunks
