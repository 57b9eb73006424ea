"""GET /v1/flags?appName=: an app's flag definitions, for SDKs (app secret).

The answer carries a strong ETag derived from the log position of the app's last flag change
(`"f1-<partition>-<offset>"`, `"f1-none"` before any) and `Cache-Control: private, no-cache`:
clients keep the body and revalidate with If-None-Match, which answers 304 while nothing
changed (weak comparison, as RFC 9110 asks for If-None-Match; `*` matches too).
"""

from __future__ import annotations

import falcon
import falcon.asgi

from state.flags.cache import FlagCache
from web.auth import Authenticator

CACHE_CONTROL = "private, no-cache"


def not_modified(req: falcon.asgi.Request, resp: falcon.asgi.Response, etag: str) -> bool:
    """Set ETag and Cache-Control; True (and 304) if If-None-Match names this version."""
    resp.etag = etag
    resp.cache_control = [CACHE_CONTROL]
    tags = req.if_none_match
    if tags and any(tag == "*" or str(tag) == etag for tag in tags):
        resp.status = falcon.HTTP_304
        return True
    return False


class FlagDefinitions:
    def __init__(self, auth: Authenticator, cache: FlagCache) -> None:
        self._auth = auth
        self._cache = cache

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        secret = req.get_header("X-Secret") or req.get_param("secret")
        app = await self._auth.app_for_secret(secret, req.get_param("appName"))
        current = await self._cache.current(app.name)
        if not_modified(req, resp, current.etag):
            return
        resp.content_type = falcon.MEDIA_JSON
        resp.data = current.body
