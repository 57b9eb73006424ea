"""POST /api/telemetry: app telemetry events, one or an array, appended as one event each."""

from __future__ import annotations

import falcon
import falcon.asgi
import orjson

from base.prometheus import appended
from schemas.envelope import JSON, new_envelope, now_micros
from schemas.telemetry import parse_events
from storage.log import EventLog
from web.auth import Authenticator
from web.body import read_json


class TelemetryIngest:
    def __init__(self, log: EventLog, auth: Authenticator, max_body_bytes: int) -> None:
        self._log = log
        self._auth = auth
        self._max_body = max_body_bytes

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body = await read_json(req, self._max_body)
        app = await self._auth.app_from_request(req, body)
        events = parse_events(body)
        received_at = now_micros()
        envelopes = [
            new_envelope(
                "telemetry.event.v1",
                orjson.dumps(event),
                key=app.name,
                app=app.name,
                content_type=JSON,
                received_at=received_at,
            )
            for event in events
        ]
        await self._log.append("telemetry", envelopes)
        appended("telemetry", len(envelopes))
        resp.status = falcon.HTTP_202
        resp.data = orjson.dumps({"accepted": len(envelopes)})
        resp.content_type = falcon.MEDIA_JSON
