"""OTLP/HTTP bodies on the way in and out: Content-Encoding (gzip, deflate) within a size
limit, and the Export<Signal>ServiceResponse answers, in the request's encoding. What the
body holds is the wire format's business (schemas/otlp/decoding.py)."""

from __future__ import annotations

import zlib

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from schemas.otlp.decoding import BodyTooLarge, Encoding, Undecodable, UnsupportedBody
from schemas.otlp.rules import ITEM_NOUN, Checked, Signal

_RESPONSES: dict[Signal, type[Message]] = {
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
}
_REJECTED_FIELD: dict[Signal, str] = {
    "traces": "rejected_spans",
    "metrics": "rejected_data_points",
    "logs": "rejected_log_records",
}
_FULL_SUCCESS: dict[Encoding, bytes] = {"protobuf": b"", "json": b"{}"}


class Inflater:
    """Decodes a Content-Encoding chunk by chunk, refusing output past `limit` bytes.

    The limit applies to the decompressed size, and decompression stops one byte past it,
    so a small gzip bomb never inflates in memory. Concatenated gzip members are read as
    one stream, as Go's gzip reader does.
    """

    __slots__ = ("_chunks", "_done", "_limit", "_size", "_stream", "_wbits")

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        coding = (content_encoding or "identity").strip().lower()
        wbits = {"identity": 0, "gzip": 31, "x-gzip": 31, "deflate": 15}.get(coding)
        if wbits is None:
            raise UnsupportedBody(
                f"Content-Encoding must be gzip, deflate or identity, not {coding!r}"
            )
        self._wbits = wbits
        self._limit = limit
        self._size = 0
        self._chunks: list[bytes] = []
        self._stream = zlib.decompressobj(wbits) if wbits else None
        self._done = False

    def feed(self, chunk: bytes) -> None:
        if self._stream is None:
            self._take(chunk)
            return
        data = chunk
        while data:
            if self._done:  # the previous member ended: the next one starts here
                self._stream = zlib.decompressobj(self._wbits)
                self._done = False
            try:
                self._take(self._stream.decompress(data, self._limit - self._size + 1))
            except zlib.error as exc:
                raise Undecodable(f"the body is not valid {self._coding()}: {exc}") from None
            if self._stream.eof:
                self._done = True
                data = self._stream.unused_data
            else:
                data = self._stream.unconsumed_tail

    def finish(self) -> bytes:
        """The whole decoded body. Raises Undecodable if a compressed stream was cut short."""
        if self._stream is not None and not self._done:
            raise Undecodable(f"the body is a truncated {self._coding()} stream")
        return b"".join(self._chunks)

    def _take(self, out: bytes) -> None:
        self._size += len(out)
        if self._size > self._limit:
            raise BodyTooLarge(f"the body is over the {self._limit}-byte limit once decoded")
        self._chunks.append(out)

    def _coding(self) -> str:
        return "gzip" if self._wbits == 31 else "deflate"


def inflate(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The decoded body of a request read whole; see Inflater."""
    inflater = Inflater(content_encoding, limit)
    inflater.feed(body)
    return inflater.finish()


def encode_response(signal: Signal, checked: Checked, encoding: Encoding) -> bytes:
    """The 200 answer: Export<Signal>ServiceResponse, with partial_success when any item
    was rejected (and left unset otherwise, as the spec requires)."""
    if not checked.rejected:
        return _FULL_SUCCESS[encoding]
    response = _RESPONSES[signal]()
    partial = response.partial_success  # type: ignore[attr-defined]
    setattr(partial, _REJECTED_FIELD[signal], checked.rejected)
    partial.error_message = (
        f"{checked.rejected} of {checked.items} {ITEM_NOUN[signal]} rejected: {checked.reason}"
    )
    return serialize(response, encoding)


def serialize(message: Message, encoding: Encoding) -> bytes:
    """A message in the request's encoding: protobuf binary, or (OTLP) JSON."""
    if encoding == "protobuf":
        return message.SerializeToString()
    return orjson.dumps(json_format.MessageToDict(message))
