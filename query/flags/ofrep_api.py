"""OpenFeature Remote Evaluation Protocol (OFREP) over HTTP, evaluated with the same bucketing
as every SDK (query/flags/resolution.py) against the app's current definitions.

- `POST /ofrep/v1/evaluate/flags/{key}`: one flag; 200, 400 (evaluation error) or 404.
- `POST /ofrep/v1/evaluate/flags`: every flag of the app; with an ETag and 304 on a matching
  If-None-Match. The ETag joins the definitions' version and a digest of the request's context,
  since the answer depends on both: a poll with an unchanged context costs no evaluation.

Evaluations are per app, so the credential is the app secret, sent the ways OFREP providers
can be configured to: `Authorization: Bearer hs_...` (OFREP's BearerAuth), `X-API-Key: hs_...`
(its ApiKeyAuth) or Hutch's `X-Secret`. `?appName=` is optional, checked like elsewhere.
Missing or wrong credentials get Hutch's error body with 401/403, which OFREP leaves open.
"""

from __future__ import annotations

import hashlib

import falcon
import falcon.asgi
import orjson

from query.flags.ofrep import Body, ofrep_bulk, ofrep_single, parse_error
from query.flags.sdk import not_modified
from state.flags.cache import AppFlags, FlagCache
from web.auth import Authenticator
from web.body import read_body

MAX_BODY = 64 * 1024


def secret_of(req: falcon.asgi.Request) -> str | None:
    header = req.get_header("Authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return req.get_header("X-API-Key") or req.get_header("X-Secret")


def context_digest(context: object) -> str:
    canonical = orjson.dumps(context, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:16]


class _Ofrep:
    def __init__(self, auth: Authenticator, cache: FlagCache) -> None:
        self._auth = auth
        self._cache = cache

    async def _app_flags(self, req: falcon.asgi.Request) -> AppFlags:
        app = await self._auth.app_for_secret(secret_of(req), req.get_param("appName"))
        return await self._cache.current(app.name)

    @staticmethod
    async def _context(req: falcon.asgi.Request, key: str | None) -> tuple[object, Body | None]:
        """The request's context, or the PARSE_ERROR answer for a body that is not JSON."""
        data = await read_body(req, MAX_BODY)
        if not data.strip():
            return None, None
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return None, parse_error(key, f"the body is not JSON: {exc}")[1]
        if not isinstance(body, dict):
            return None, parse_error(key, "the body must be a JSON object")[1]
        return body.get("context"), None

    @staticmethod
    def _answer(resp: falcon.asgi.Response, status: int, body: Body) -> None:
        resp.status = status
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(body)


class OfrepFlag(_Ofrep):
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, key: str) -> None:
        current = await self._app_flags(req)
        context, error = await self._context(req, key)
        if error is not None:
            self._answer(resp, 400, error)
            return
        self._answer(resp, *ofrep_single(current.by_name.get(key), key, context))


class OfrepFlags(_Ofrep):
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        current = await self._app_flags(req)
        context, error = await self._context(req, None)
        if error is not None:
            self._answer(resp, 400, error)
            return
        if not_modified(req, resp, f"{current.etag}-{context_digest(context)}"):
            return
        status, body = ofrep_bulk(current.flags, context)
        if status != 200:
            resp.etag = None
        self._answer(resp, status, body)
