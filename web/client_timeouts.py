"""How long a client may take to send a request.

uvicorn waits as long as a client likes for a request head (its keep-alive timeout covers
only the time between requests) and for a body, so a client could hold a connection and its
buffers by sending nothing, or a byte at a time. Here a client has HUTCH_CLIENT_TIMEOUT
seconds from connecting (or from the first byte of a further request on a kept-alive
connection) to send its whole request, plus a second per HUTCH_CLIENT_MIN_RATE bytes it
sends, and never HUTCH_CLIENT_TIMEOUT seconds without a byte while one is awaited (Pace: a
burst then silence, a truncated body, is cut then, not after the credit the burst earned):
- a head not complete in time: a JSON 408 (or, if nothing came at all, just the close);
- a body the application is reading: RequestTimeout (a JSON 408) is raised from that read,
  so the application never acts on part of a body; the answer closes the connection;
- a body still arriving after the application answered without reading it all: closed.

Deadlines are checked by one timer per event loop (Sweep), not one per request: arming and
cancelling a uvloop timer costs ~4 µs, asyncio.timeout ~14 µs, a noticeable part of an
ingest request. A cut comes up to a second after the deadline.

The gunicorn master imports this module (PacedUvicornWorker): nothing here imports chdb.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from base.settings import Settings
from web.body import RequestTimeout

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]  # loose: Falcon's own types differ


@dataclass(frozen=True, slots=True)
class Pace:
    """`timeout_s` to send a request, plus one second for every `min_rate` bytes sent, and
    never `timeout_s` of silence while a byte is awaited (`idle_since`): a large body at a
    decent pace is never cut, a trickle or a stall always is."""

    timeout_s: float
    min_rate: int

    def deadline(self, since: float, received: int, idle_since: float) -> float:
        paced = since + self.timeout_s + received / self.min_rate
        return min(paced, idle_since + self.timeout_s)

    @property
    def sweep_s(self) -> float:
        return min(1.0, self.timeout_s / 4)


def pace_of(settings: Settings) -> Pace:
    return Pace(settings.client_timeout_s, settings.client_min_rate)


ANSWERED_LINGER_S = 1.0
"""How long the unread rest of an answered request is still read before the connection is
closed (closing at once could reset the connection before the client has read the answer)."""


class Watched(Protocol):
    def overdue(self, now: float) -> bool: ...

    def expire(self) -> None: ...


class Sweep:
    """Expires overdue items every `every_s` seconds, on one timer, while it has any."""

    _of_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Sweep]]
    _of_loop = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop, every_s: float) -> None:
        self.loop = loop
        self._every_s = every_s
        self._items: set[Watched] = set()
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop, every_s: float) -> Sweep:
        sweep = cls._of_loop.get(loop)
        if sweep is None:
            sweep = cls._of_loop[loop] = cls(loop, every_s)
        return sweep

    def add(self, item: Watched) -> None:
        self._items.add(item)
        if self._timer is None:
            self._timer = self.loop.call_later(self._every_s, self._run)

    def discard(self, item: Watched) -> None:
        self._items.discard(item)

    def _run(self) -> None:
        self._timer = None
        now = self.loop.time()
        for item in [item for item in self._items if item.overdue(now)]:
            self._items.discard(item)
            item.expire()
        if self._items:
            self._timer = self.loop.call_later(self._every_s, self._run)


class PacedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on receiving each request."""

    pace: ClassVar[Pace]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sweep = Sweep.of(self.loop, self.pace.sweep_s)
        self._reading = False  # a request is being received, head or body
        self._answered_at: float | None = None  # when its answer was complete, if it is
        self._head_done = False
        self._since = 0.0
        self._last = 0.0
        self._received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._begin()
        self._sweep.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._sweep.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._last = self.loop.time()
        if self._reading:
            self._received += len(data)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._reading:  # the first request began with the connection
            self._begin()
        self._head_done = False

    def on_headers_complete(self) -> None:
        self._head_done = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading = False

    def _begin(self) -> None:
        self._answered_at = None
        self._reading = True
        self._since = self._last = self.loop.time()
        self._received = 0

    def overdue(self, now: float) -> bool:
        if not self._reading:
            return False
        if self._head_done and self.cycle and self.cycle.response_complete:
            # Answered before its body was all read (a 413, 409 or 401 that did not need
            # it): the rest is not waited for at the client's pace, which for a large body
            # is minutes, only for ANSWERED_LINGER_S, so the client can read the answer first.
            if self._answered_at is None:
                self._answered_at = now
            return now - self._answered_at >= ANSWERED_LINGER_S
        if now < self.pace.deadline(self._since, self._received, self._last):
            return False
        # The application has the head and has not answered: its read of the body answers.
        return not self._head_done

    def expire(self) -> None:
        if self.transport.is_closing():
            return
        if not self._head_done and self._received:
            message = f"the request was not received within {self.pace.timeout_s:g}s"
            body = orjson.dumps(RequestTimeout(message).body())
            head = [b"HTTP/1.1 408 Request Timeout\r\n"]
            head += [name + b": " + value + b"\r\n" for name, value in self._default_headers()]
            head += [
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
            ]
            self.transport.write(b"".join(head) + body)
        self.transport.close()  # an answered request's unread rest is not waited for either

    def _default_headers(self) -> list[tuple[bytes, bytes]]:
        return list(self.server_state.default_headers)


def paced_protocol(pace: Pace) -> type[PacedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=` setting, bound to these limits."""
    return type("PacedHttpToolsProtocol", (PacedHttpToolsProtocol,), {"pace": pace})


class PacedUvicornWorker(UvicornWorker):  # type: ignore[misc]
    """Gunicorn's uvicorn worker on the paced protocol; limits from the environment, which
    `hutch ingest` (and the container) sets from Hutch's settings."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        protocol = paced_protocol(pace_of(Settings.from_env()))
        self.CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "http": protocol}
        super().__init__(*args, **kwargs)


class _BodyRead:
    """One request's reading of its body: a read overdue is cancelled, and turned into
    RequestTimeout where it was waiting."""

    __slots__ = ("_pace", "_since", "expired", "received", "task", "waiting_since")

    def __init__(self, pace: Pace, since: float) -> None:
        self._pace = pace
        self._since = since
        self.waiting_since = since
        """When the application last asked for more of the body (its own pauses between
        reads are not the client's silence)."""
        self.received = 0
        self.expired = False
        self.task: asyncio.Task[Any] | None = None

    def overdue(self, now: float) -> bool:
        return now >= self._pace.deadline(self._since, self.received, self.waiting_since)

    def expire(self) -> None:
        if self.task is not None:
            self.expired = True
            self.task.cancel()


class BodyDeadline:
    """ASGI middleware: a request body that does not arrive at `pace` ends in a 408, raised
    from the application's own read and answered by its error handler."""

    def __init__(self, app: ASGIApp, pace: Pace) -> None:
        self._app = app
        self._pace = pace
        self._sweep: Sweep | None = None

    async def __call__(self, scope: Message, receive: Receive, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        if self._sweep is None or self._sweep.loop is not loop:
            self._sweep = Sweep.of(loop, self._pace.sweep_s)
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, self._paced(receive, self._sweep, loop.time()), watched)
        except RequestTimeout as exc:
            # Raised where the framework reads the body itself, before its error handlers
            # are in place (Falcon awaits the first message up front): answered here.
            if started:
                return
            headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
            await send({"type": "http.response.start", "status": 408, "headers": headers})
            await send({"type": "http.response.body", "body": orjson.dumps(exc.body())})

    def _paced(self, receive: Receive, sweep: Sweep, since: float) -> Receive:
        read = _BodyRead(self._pace, since)
        complete = False

        async def paced() -> Message:
            nonlocal complete
            if complete:  # what follows the body (a disconnect) takes as long as it takes
                return await receive()
            read.task = asyncio.current_task()
            read.waiting_since = sweep.loop.time()
            sweep.add(read)
            try:
                message = await receive()
            except asyncio.CancelledError:
                if not read.expired or read.task is None:
                    raise
                read.task.uncancel()
                raise RequestTimeout(
                    f"the request body did not arrive in time ({self._pace.timeout_s:g}s, "
                    f"plus 1s per {self._pace.min_rate} bytes received, and never "
                    f"{self._pace.timeout_s:g}s without a byte); resend it faster",
                    headers={"Connection": "close"},
                ) from None
            finally:
                sweep.discard(read)
                read.task = None
            read.received += len(message.get("body", b""))
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        return paced
