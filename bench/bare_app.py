"""The ceiling for ingest: a bare Falcon ASGI endpoint that parses the same JSON body as
POST /api/telemetry, checks it is an event, and answers 202 — no auth, no log, no fsync.
Served by the same gunicorn configuration as Hutch's ingest (hutch/gunicorn_conf.py)."""

from __future__ import annotations

import falcon
import falcon.asgi
import orjson


class Bare:
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = orjson.loads(await req.stream.read())
        if not isinstance(body, dict) or "kind" not in body:
            raise falcon.HTTPBadRequest()
        resp.status = falcon.HTTP_202
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps({"accepted": 1})


app = falcon.asgi.App()
app.add_route("/api/telemetry", Bare())
