"""The web-app build service's reads, for the developer who made the builds:

    GET /api/v1/builds/{id}               one build's status (and its download on success)
    GET /api/v1/builds?limit=&offset=     newest first; limit 1-100 (20), offset >= 0 (0)

Another developer's build answers 404, as a missing one does: ids are not secrets, but
whether someone else has a build is not the caller's business.
"""

from __future__ import annotations

import asyncio
from typing import Any

import falcon.asgi
import orjson

from base.client_errors import NotFound
from schemas.envelope import iso_micros, now_micros
from state import web_builds_reads as q
from storage.objects import ObjectStore
from storage.relational import Relational
from web.auth import Authenticator
from web.query_string import limit, offset

DOWNLOAD_URL_EXPIRES_S = 3600


def build_json(build: q.WebBuild, objects: ObjectStore, now: int) -> dict[str, Any]:
    status = build.visible_status(now)
    body: dict[str, Any] = {
        "id": build.id,
        "status": status,
        "createdAt": iso_micros(build.created_at),
        "platform": build.platform,
        "name": build.name,
        "bundleId": build.bundle_id,
        "version": build.version,
        "url": build.url,
        "permissions": list(build.permissions),
    }
    if status in ("success", "failed") and build.completed_at is not None:
        body["completedAt"] = iso_micros(build.completed_at)
    if status == "success" and build.artifact_key is not None:
        body["downloadUrl"] = objects.presign_get(
            build.artifact_key,
            DOWNLOAD_URL_EXPIRES_S,
            filename=build.artifact_key.rsplit("/", 1)[-1],
        )
        body["size"] = build.artifact_size
        body["sha256"] = build.artifact_sha256
    if status == "failed":
        body["error"] = build.error
    return body


class BuildStatusResource:
    def __init__(self, db: Relational, objects: ObjectStore, auth: Authenticator) -> None:
        self._db = db
        self._objects = objects
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        developer = await self._auth.developer(req)
        build = await asyncio.to_thread(q.web_build, self._db, id)
        if build is None or build.developer != developer.name:
            raise NotFound(f"no build {id!r} among yours", field="id")
        resp.data = orjson.dumps(build_json(build, self._objects, now_micros()))


class BuildListing:
    def __init__(self, db: Relational, objects: ObjectStore, auth: Authenticator) -> None:
        self._db = db
        self._objects = objects
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        page_size = limit(req, default=20, maximum=100)
        skip = offset(req)
        total, builds = await asyncio.to_thread(
            q.web_builds_of, self._db, developer.name, page_size, skip
        )
        now = now_micros()
        resp.data = orjson.dumps(
            {
                "builds": [build_json(b, self._objects, now) for b in builds],
                "total": total,
                "limit": page_size,
                "offset": skip,
            }
        )
