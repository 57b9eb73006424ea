"""POST /v1/flags/eval: SDKs report the flags they evaluated (app secret).

`{"evaluations": [{"flagName", "enabled", "variant"?, "context"?}]}` is appended as ONE
`flag.evaluations.v1` event (the projection makes a row per report) and answered, once
durable, with 202 `{"accepted": N, "unknown": [names the app does not define]}`. Reports of
unknown flags are kept too: they point to stale clients.
"""

from __future__ import annotations

import falcon
import falcon.asgi
import orjson

from base.prometheus import appended
from ingest.flags.commands import invalid
from schemas.envelope import new_envelope
from schemas.flags.definitions import FlagError
from schemas.flags.evaluations import parse_evaluations, report_to_json
from schemas.flags.events import FlagEvaluations, encode
from state.flags.cache import FlagCache
from storage.log import EventLog
from web.auth import Authenticator
from web.body import read_json


class FlagEvaluationIngest:
    def __init__(
        self, log: EventLog, auth: Authenticator, cache: FlagCache, max_body_bytes: int
    ) -> None:
        self._log = log
        self._auth = auth
        self._cache = cache
        self._max_body = max_body_bytes

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json(req, self._max_body)
        app = await self._auth.app_from_request(req, body)
        try:
            reports = parse_evaluations(body)
        except FlagError as exc:
            raise invalid(exc) from None
        defined = (await self._cache.current(app.name)).by_name
        unknown = list(dict.fromkeys(r.flag_name for r in reports if r.flag_name not in defined))
        if reports:
            payload = FlagEvaluations(app.name, [report_to_json(r) for r in reports], unknown)
            envelope = new_envelope(
                "flag.evaluations.v1", encode(payload), key=app.name, app=app.name
            )
            await self._log.append("flags", [envelope])
            appended("flags", 1)
        resp.status = falcon.HTTP_202
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps({"accepted": len(reports), "unknown": unknown})
