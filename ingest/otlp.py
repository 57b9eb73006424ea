"""OTLP/HTTP: POST /v1/traces, /v1/metrics and /v1/logs, binary protobuf or OTLP/JSON.

One export request becomes ONE log record (its decoded body, as sent, and its encoding),
appended only once schemas.otlp.decoding.check has read it as the projectors will (so what is
acknowledged can be stored) and only if it has an item to keep; the projectors decode and
flatten in batches. The answer is the Export*ServiceResponse in the request's encoding, with
partial_success when the check rejected items, and a google.rpc.Status for every refusal
(ingest/otlp_status.py): a body upb cannot read is a 400.

The app secret comes from the X-Secret header or ?secret= (preferred: the body is then not
needed to authenticate, so a stranger is refused before it is read). OTLP/JSON bodies may
also carry it as a top-level "secret" member, which OTLP/JSON parsers ignore as unknown;
it is removed from the body before the body is stored. `appName` (query only) must name the
secret's app when given.
"""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi
import orjson

from base.client_errors import Unauthorized
from base.prometheus import appended
from ingest.otlp_http import Inflater, encode_response
from ingest.otlp_status import refusal
from schemas.envelope import new_envelope
from schemas.events import TOPIC_OF, EventType
from schemas.otlp.decoding import (
    BodyTooLarge,
    Checked,
    Encoding,
    Signal,
    Undecodable,
    check,
    check_document,
    content_type,
    encoding_of,
)
from state import identity_reads as q
from storage.log import EventLog
from web.auth import Authenticator

EVENT_TYPES: dict[Signal, EventType] = {
    "traces": "otlp.traces.v1",
    "metrics": "otlp.metrics.v1",
    "logs": "otlp.logs.v1",
}
ROUTES: dict[Signal, str] = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}

_EMPTY = Checked(0)


class OtlpIngest:
    """The export endpoint of one signal."""

    def __init__(
        self, signal: Signal, log: EventLog, auth: Authenticator, max_body_bytes: int
    ) -> None:
        self._signal: Signal = signal
        self._type = EVENT_TYPES[signal]
        self._topic = TOPIC_OF[self._type]
        self._log = log
        self._auth = auth
        self._max_body = max_body_bytes

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        encoding: Encoding = "json"
        try:
            encoding = encoding_of(req.content_type)
            resp.data = await self._export(req, encoding)
            resp.content_type = content_type(encoding)
        except Exception as exc:
            refused = refusal(exc)
            if refused is None:
                raise
            resp.status = refused.status
            resp.content_type = refused.content_type(encoding)
            resp.data = refused.body(encoding)
            for name, value in refused.headers.items():
                resp.set_header(name, value)
            req.context.error_code = refused.reason

    async def _export(self, req: falcon.asgi.Request, encoding: Encoding) -> bytes:
        secret = req.get_header("X-Secret") or req.get_param("secret")
        app_name = req.get_param("appName")
        app: q.App | None = None
        if secret or encoding == "protobuf":
            app = await self._auth.app_for_secret(secret, app_name)
        body = await self._read(req)
        if not body:
            checked = _EMPTY  # an empty body is the empty request: nothing to keep
        elif encoding == "protobuf":
            checked = check(self._signal, body, encoding)
        else:
            body, checked, in_body = self._check_json(body)
            if app is None:
                app = await self._auth.app_for_secret(in_body, app_name)
        if app is None:  # a JSON request with an empty body and no secret
            app = await self._auth.app_for_secret(None, app_name)
        if checked.accepted:
            envelope = new_envelope(
                self._type, body, key=app.name, app=app.name, content_type=content_type(encoding)
            )
            await self._log.append(self._topic, (envelope,))
            appended(self._topic, 1)
        return encode_response(self._signal, checked, encoding)

    async def _read(self, req: falcon.asgi.Request) -> bytes:
        """The decoded body: 413 past the limit (before or after decompression), 415 for an
        unknown Content-Encoding, 400 for a broken compressed stream."""
        coding = req.get_header("Content-Encoding")
        length = req.content_length
        if length is not None and length > self._max_body:
            raise BodyTooLarge(
                f"the body of {length} bytes is over the {self._max_body}-byte limit"
            )
        if length is not None and (coding is None or coding.strip().lower() == "identity"):
            data: bytes = await req.stream.read(length)
            return data
        inflater = Inflater(coding, self._max_body)
        received = 0
        async for chunk in req.stream:
            received += len(chunk)
            if received > self._max_body:
                raise BodyTooLarge(f"the body is over the {self._max_body}-byte limit")
            inflater.feed(chunk)
        return inflater.finish()

    def _check_json(self, body: bytes) -> tuple[bytes, Checked, str | None]:
        """Check an OTLP/JSON body; returns the body to store (without a "secret" member),
        what the check found, and the secret the body carried, if any."""
        try:
            document: Any = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Undecodable(f"the body is not valid JSON: {exc}") from None
        secret = None
        if isinstance(document, dict) and "secret" in document:
            found = document.pop("secret")
            if not isinstance(found, str):
                raise Unauthorized("the body's secret must be a string", code="invalid_secret")
            secret = found
            body = orjson.dumps(document)  # a secret is never stored in clear
        return body, check_document(self._signal, document), secret
