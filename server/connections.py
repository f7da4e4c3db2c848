"""TCP connections and HTTP requests, bounded below the app: uvicorn's httptools protocol with
deadlines, sizes and connection caps (``uvicorn.Config(**uvicorn_options(app, limits))``).

uvicorn closes a connection idle between requests (``timeout_keep_alive``), but has nothing for a
client that opens a connection and sends its request slowly or never (slowloris): no deadline for
the request's headers or its body, and no bound on the headers' size (llhttp, under httptools,
keeps all it is sent). Its ``limit_concurrency`` answers requests with 503 once that many
connections are open, but leaves those connections open and lets WebSocket upgrades through. So,
per connection (the ``Limits`` fields in brackets):

- **How fast** [``connection_rate_per_address``]: new connections a second from one peer address
  (bursts of as many); one more is dropped as it comes, unanswered: an answer would cost what the
  limit saves (measured: a WebSocket handshake refused with an answer costs the server 1 ms of CPU,
  a dropped connection 0.12 ms).
- **At once** [``max_connections``, ``max_connections_per_address``]: counted over uvicorn's own
  set of connections (HTTP and WebSocket). One more is answered once its request's headers are in
  (or closed after ``REFUSE_GRACE_S``): 503 ``too_many_connections`` for the server's limit, 429 for
  its peer address's (the peer's own: a proxy in front is one address; give it 0 there). A refused
  WebSocket handshake gets the same HTTP answer.
- **Headers** [``header_timeout_s``, ``max_header_bytes``]: the request line and headers within
  the deadline, counted from the connection's opening (its first request) or from the request's
  first byte (later ones on a kept-alive connection): else 408 ``request_timeout``, or, for a
  connection that sent nothing at all, closed; more bytes than allowed: 431 ``headers_too_large``.
- **Body** [``body_timeout_s``, ``max_body_bytes``]: the whole body within the deadline once the
  headers are in, else 408 ``request_timeout``; larger (its ``Content-Length``, or as it comes):
  413 ``request_too_large``. The app then reads a disconnect and its answer goes nowhere.
- **Idle** [``keep_alive_s``]: uvicorn's ``timeout_keep_alive``.

Each answer is the API's error body with ``Connection: close`` (then the connection is shut for
writing and what still comes dropped for ``LINGER_S`` before it closes); each refusal is counted by
reason.
"""

from __future__ import annotations

import json
import resource
from asyncio import TimerHandle, Transport
from collections import Counter
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.utils import get_remote_addr
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .gates import address_key
from .lane import Lane
from .limits import Limits
from .ratelimit import RateLimiter

REFUSE_GRACE_S = 1.0  # a connection over the caps has this long to send its headers and hear why
# after an answer the connection is shut for writing and what still comes is read and dropped for up
# to this long before it is closed: closed at once, unread data makes the kernel reset the connection,
# and the client may never see the answer (a browser uploading too much would show a network error)
LINGER_S = 2.0
SPARE_FILES = 256  # open files besides the connections: models, logs, databases, WebRTC's UDP sockets
# pieces of HTTP connections' data (requests, handshakes, bodies) parsed and handed to the app in one
# turn of the event loop; the rest wait for the next turns, so that live sessions' callbacks run between
EDGE_PER_TURN = 4


class GuardedWebSockets(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol (websockets, sans-I/O) that says when its connection is lost, so
    that the connection it was upgraded from is counted until then."""

    on_lost: Callable[[], None] | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.on_lost is not None:
            self.on_lost()
            self.on_lost = None


class GuardedProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with the module's limits; ``protocol`` makes one for a ``Limits``
    (with its ``ws_protocol_class`` a ``GuardedWebSockets``, so that WebSockets count as connections)."""

    limits = Limits()
    lane = Lane(EDGE_PER_TURN)  # the edge's share of each turn of the event loop (``protocol`` makes one per server)
    arrivals = RateLimiter(0)  # new connections by peer address (``protocol`` makes one per server)
    by_address: Counter[str] = Counter()  # connections open by peer address (HTTP and WebSocket)

    @staticmethod
    def count(reason: str) -> None:
        """Count a refusal (``protocol`` gives the app's metrics)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._timer: TimerHandle | None = None
        self._reading: str | None = "headers"  # what the deadline is for: headers, body, or none
        self._bytes = 0  # of what is being read
        self._over: tuple[int, str, str] | None = None  # over a cap: status, reason, message
        self._answered = False
        self._address: str | None = None  # the peer's, while it counts in ``by_address``
        self._held: list[bytes] | None = None  # data waiting its turn in the lane (reading paused meanwhile)

    # -- connections ------------------------------------------------------------------------------

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        peer = get_remote_addr(transport)
        address = address_key(peer[0]) if peer is not None else None
        if address is not None and self.arrivals.take(address):
            super().connection_made(transport)  # (so that connection_lost finds it)
            self.count("connection_rate")
            self._answered = True
            transport.abort()
            return
        self._over = self._over_caps(address)
        super().connection_made(transport)
        if address is not None:
            self._address = address
            self.by_address[address] += 1
        if self._over is not None:
            self.count(self._over[1])
            self._arm(REFUSE_GRACE_S, self.transport.close)
        else:
            self._arm(self.limits.header_timeout_s, self._headers_late)

    def _over_caps(self, address: str | None) -> tuple[int, str, str] | None:
        """Why a new connection from ``address`` is one too many (before it is counted), or None."""
        limits = self.limits
        if len(self.connections) >= limits.max_connections:
            return 503, "connections", f"the server has {limits.max_connections} connections open, its limit"
        mine = self.by_address[address] if address is not None else 0
        if limits.max_connections_per_address and mine >= limits.max_connections_per_address:
            return 429, "connections_per_address", f"your address has {mine} connections open, its limit"
        return None

    def _let_go(self) -> None:
        """The connection no longer counts for its address."""
        if self._address is not None:
            self.by_address[self._address] -= 1
            if not self.by_address[self._address]:
                del self.by_address[self._address]
            self._address = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._let_go()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        if self._answered:  # refused
            return
        self._disarm()  # the connection is the WebSocket protocol's from here on
        super().handle_websocket_upgrade()
        websocket = self.transport.get_protocol()
        if isinstance(websocket, GuardedWebSockets):
            websocket.on_lost = self._let_go  # it counts until the WebSocket's connection is lost
        else:  # another WebSocket protocol: its connections go uncounted per address
            self._let_go()

    # -- reading a request ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return
        if self._held is not None:  # waiting its turn: what came since waits behind it
            self._held.append(data)
            return
        if not self.lane.admit():
            self._held = [data]
            self.transport.pause_reading()
            self.lane.wait(self._turn)
            return
        self._take(data)

    def _turn(self) -> None:
        held, self._held = self._held, None
        if held is None or self._answered or self.transport.is_closing():
            return
        if not self.flow.read_paused:  # (uvicorn pauses reading too, while the app's buffer is full)
            self.transport.resume_reading()
        self._take(b"".join(held))

    def _take(self, data: bytes) -> None:
        if self._reading == "headers":
            self._bytes += len(data)
        super().data_received(data)
        if self._reading == "headers" and self._bytes > self.limits.max_header_bytes and not self._answered:
            self.count("headers_too_large")
            self._answer(431, "headers_too_large", f"request headers are limited to {self.limits.max_header_bytes} "
                                                   "bytes")  # fmt: skip

    # once answered (and closing), the parser's callbacks for the rest of what came do nothing

    def on_message_begin(self) -> None:
        if self._answered:
            return
        super().on_message_begin()
        if self._reading != "headers":  # a later request on a kept-alive connection: its deadline starts now
            self._reading, self._bytes = "headers", 0
            self._arm(self.limits.header_timeout_s, self._headers_late)

    def on_headers_complete(self) -> None:
        if self._answered:
            return
        if self._over is not None:
            status, reason, message = self._over
            self._answer(status, "too_many_connections", f"{message}; try again later", retry_after=1)
            return
        length = self._content_length()
        if length is not None and length > self.limits.max_body_bytes:
            self._body_too_large()
            return
        self._reading, self._bytes = "body", 0
        self._arm(self.limits.body_timeout_s, self._body_late)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._answered:
            return
        self._bytes += len(body)
        if self._bytes > self.limits.max_body_bytes:
            self._body_too_large()
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._answered:
            return
        self._disarm()
        self._reading = None  # the app's turn; then uvicorn's keep-alive timeout, until the next request
        super().on_message_complete()

    def _content_length(self) -> int | None:
        for name, value in self.headers:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None  # llhttp refuses it
        return None

    # -- deadlines and answers --------------------------------------------------------------------

    def _headers_late(self) -> None:
        self.count("header_timeout")
        if self._bytes:
            self._answer(408, "request_timeout", f"the request's headers took more than "
                                                 f"{self.limits.header_timeout_s:g} s")  # fmt: skip
        else:  # nothing was sent: nobody to tell
            self._answered = True
            self.transport.close()

    def _body_late(self) -> None:
        self.count("body_timeout")
        self._answer(408, "request_timeout", f"the request's body took more than {self.limits.body_timeout_s:g} s "
                                             "after its headers")  # fmt: skip

    def _body_too_large(self) -> None:
        self.count("body_too_large")
        self._answer(413, "request_too_large", f"request bodies are limited to {self.limits.max_body_bytes} bytes")

    def _answer(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        """Answer ``status`` with the error body, unless the app has begun its own answer, and close.
        A request the app is reading reads a disconnect from here on."""
        self._disarm()
        self._answered = True
        cycle = self.cycle if self._reading == "body" else None  # the request whose body is coming, the app's
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        if self.transport.is_closing():
            return
        if cycle is None or not cycle.response_started:
            self.transport.write(self._response(status, code, message, retry_after))
        if self.transport.can_write_eof():  # not over TLS
            self.transport.write_eof()
            self.flow.resume_reading()
            self._arm(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def _response(self, status: int, code: str, message: str, retry_after: int | None) -> bytes:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        headers = [*self.server_state.default_headers, (b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode()), (b"connection", b"close")]  # fmt: skip
        if retry_after is not None:
            headers.append((b"retry-after", str(retry_after).encode()))
        return b"".join([STATUS_LINE[status], *(b"%s: %s\r\n" % h for h in headers), b"\r\n", body])

    def _arm(self, seconds: float, then: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, then)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def protocol(limits: Limits, count: Callable[[str], None]) -> type[GuardedProtocol]:
    """A ``GuardedProtocol`` class for ``limits`` that counts its refusals with ``count(reason)``."""
    arrivals = RateLimiter(limits.connection_rate_per_address, period_s=1.0)
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits, "count": staticmethod(count),
                                                         "lane": Lane(EDGE_PER_TURN), "arrivals": arrivals,
                                                         "by_address": Counter()})  # fmt: skip


def uvicorn_options(app, limits: Limits) -> dict:
    """uvicorn's settings for ``app`` (a ``server.app`` app) under ``limits``: the guarded HTTP and
    WebSocket protocols (websockets, sans-I/O), counting into the app's metrics, and the keep-alive
    timeout."""

    def count(reason: str) -> None:
        state = getattr(app.state, "sonic", None)  # None before the lifespan has built it: no connections yet
        if state is not None:
            state.gates.count(reason)

    return {"http": protocol(limits, count), "ws": GuardedWebSockets, "timeout_keep_alive": limits.keep_alive_s}


def ensure_open_files(connections: int) -> str | None:
    """Raise this process's soft limit on open files to hold ``connections`` and ``SPARE_FILES``
    more, as far as the hard limit allows; a warning if it does not."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = connections + SPARE_FILES
    if soft == resource.RLIM_INFINITY or soft >= need:
        return None
    soft = need if hard == resource.RLIM_INFINITY else min(need, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft < need:
        return (f"the open-files limit ({soft}) is below --max-connections + {SPARE_FILES}: raise it (ulimit -n) "
                "or lower --max-connections")  # fmt: skip
    return None
