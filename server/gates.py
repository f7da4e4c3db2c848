"""``server.limits`` applied in the app: what a client may hold before it is anyone, and how often it
may ask for work that costs CPU (``Gates``, held in ``AppState.gates``).

- **Before a session.** A WebSocket has ``start_timeout_s`` to start its session (else a fatal
  ``start_timeout`` error and close code 1008, in ``server.ws``); at most ``max_unstarted`` such
  WebSockets are open at once, ``max_unstarted_per_address`` from one client address (one more is
  refused at the handshake: 503, or 429 for its address, ``too_many_connections``). The same for
  WebRTC offers answered but not connected: ``max_pending_offers`` (per address
  ``max_pending_offers_per_address``), each given ``connect_timeout_s`` to connect (``server.webrtc``).
- **Rates.** Portrait uploads, renders and sessions (WebSocket ``start`` and WebRTC offers) are
  counted per client address and per API key in token buckets (``server.ratelimit``): beyond
  them 429 ``rate_limited`` with ``Retry-After`` (a WebSocket ``start``: a fatal ``rate_limited``,
  close code 1013). The per-address limits hold in development mode too (everyone is "dev" there,
  so there is no key to count).
- **Connections and HTTP requests** (``server.connections``, below the app): new connections a
  second per address, connections at once in total and per address, the time to send a request's
  headers and its body, their sizes, and the idle time between requests.

A client's address is the one uvicorn gives the app: the peer's, or, from a proxy it trusts
(``FORWARDED_ALLOW_IPS``, by default 127.0.0.1 and ::1), the ``X-Forwarded-For`` one. IPv6
addresses count by their /64 (one site's addresses; an attacker may hold 2**64 of them).
Every refusal is counted in ``sonic_rt_refused_total{reason}``.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections.abc import Callable
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from sonic_rt.errors import SonicError

from .errors import error_response
from .limits import RATED, Limits
from .metrics import Metrics
from .ratelimit import RateLimiter, retry_after
from .workers.jobs import JobsBusy

# the HTTP requests each rate counts (WebSocket starts count as sessions in server.ws)
RATED_ROUTES = {("POST", "/v1/portraits"): "portraits", ("POST", "/v1/renders"): "renders",
                ("POST", "/v1/webrtc/offer"): "sessions"}  # fmt: skip
JOBS = ("portraits", "renders")  # of those, the ones that are batch jobs (``server.workers.jobs``)


class Refused(SonicError):
    """Refused by a limit: the HTTP ``status``, the ``reason`` the metrics count it under and the
    seconds to wait before trying again (``retry_after``)."""

    status = 429

    def __init__(self, message: str, reason: str, retry_after_s: float, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after(retry_after_s)
        self.status = status or self.status


class TooManyConnections(Refused):
    code = "too_many_connections"


class RateLimited(Refused):
    code = "rate_limited"


class StartTimeout(SonicError):
    code = "start_timeout"


@functools.lru_cache(maxsize=4096)  # parsing an address takes 10 µs; it is asked at every connection
def address_key(host: str | None) -> str:
    """A client address as the limits count it: IPv4 as it is, IPv6 by its /64 network, an
    IPv4-mapped IPv6 address as its IPv4 address; a name (a Unix socket's) as it is."""
    try:
        ip = ipaddress.ip_address(host or "")
    except ValueError:
        return host or "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))  # (int: a scope id, %eth0, is dropped)
    return str(ip)


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return address_key(client[0] if client else None)


class Place:
    """One place held in ``Places``; ``release`` gives it back (once; later calls do nothing)."""

    def __init__(self, places: Places, address: str) -> None:
        self._places, self.address = places, address
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._places._release(self.address)


class Places:
    """What clients hold before they are anyone (WebSockets before ``start``, WebRTC offers before
    they connect): at most ``total`` at once, ``per_address`` (0: any number) from one address.
    ``reason``: what the metrics call a refusal (``_per_address`` added for an address's)."""

    def __init__(self, reason: str, what: str, total: int, per_address: int, retry_after_s: float) -> None:
        self.reason, self.what = reason, what
        self.total, self.per_address = total, per_address
        self.retry_after_s = retry_after_s  # a place comes free within this (the deadline of what holds it)
        self.held = 0
        self._by_address: dict[str, int] = {}

    def take(self, address: str) -> Place:
        """A place for ``address``; ``TooManyConnections`` (503 for the server's limit, 429 for the address's)."""
        if self.held >= self.total:
            raise TooManyConnections(f"the server has {self.total} {self.what} open, its limit; try again later",
                                     self.reason, self.retry_after_s, status=503)  # fmt: skip
        mine = self._by_address.get(address, 0)
        if self.per_address and mine >= self.per_address:
            raise TooManyConnections(f"your address has {mine} {self.what} open, its limit; finish one first",
                                     f"{self.reason}_per_address", self.retry_after_s)  # fmt: skip
        self.held += 1
        self._by_address[address] = mine + 1
        return Place(self, address)

    def holding(self, address: str) -> int:
        return self._by_address.get(address, 0)

    def _release(self, address: str) -> None:
        self.held -= 1
        left = self._by_address.pop(address) - 1
        if left:
            self._by_address[address] = left


class Gates:
    """``Limits`` applied in one running server (its event loop only): the places before a session,
    the rates, and the counting of every refusal in ``metrics``."""

    def __init__(self, limits: Limits, metrics: Metrics, keyed: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.limits = limits
        self.metrics = metrics
        self.keyed = keyed  # API keys in use (else everyone is "dev": only addresses are counted)
        self.unstarted = Places("unstarted_websockets", "WebSockets without a session", limits.max_unstarted,
                                limits.max_unstarted_per_address, limits.start_timeout_s)  # fmt: skip
        self.pending = Places("pending_offers", "WebRTC offers not yet connected", limits.max_pending_offers,
                              limits.max_pending_offers_per_address, limits.connect_timeout_s)  # fmt: skip
        self._rates = {kind: tuple(RateLimiter(n, clock) for n in limits.per_minute(kind)) for kind in RATED}
        metrics.unstarted.set_function(lambda: self.unstarted.held)
        metrics.pending_offers.set_function(lambda: self.pending.held)

    def rate(self, kind: str, address: str, key: str | None) -> None:
        """Count one ``kind`` (a key of ``RATED``) for ``address`` and the API key named ``key``;
        ``RateLimited`` (nothing counted) if either has had its share."""
        by_address, by_key = self._rates[kind]
        key = key if self.keyed else None
        waits = [(by_address.wait(address), "address", address), (by_key.wait(key) if key else 0.0, "key", key)]
        wait, scope, who = max(waits, key=lambda w: w[0])
        if wait > 0:
            limit = self.limits.per_minute(kind)[scope == "key"]
            owner = "your address" if scope == "address" else f"the API key {who!r}"
            raise RateLimited(f"{owner} is limited to {limit} {RATED[kind]} a minute; try again in "
                              f"{retry_after(wait)} s", f"{kind}_per_{scope}", wait)  # fmt: skip
        by_address.take(address)
        if key:
            by_key.take(key)

    def count(self, reason: str) -> None:
        self.metrics.refused.labels(reason).inc()

    def answer(self, err: Refused) -> JSONResponse:
        """The HTTP answer to a refusal (counted): its status, the error body, ``Retry-After``."""
        self.count(err.reason)
        self.metrics.errors.labels(err.code).inc()
        return JSONResponse({"error": {"code": err.code, "message": str(err)}}, status_code=err.status,
                            headers={"Retry-After": str(err.retry_after)})  # fmt: skip

    async def hold_websocket(self, ws: WebSocket) -> Place | None:
        """A place for a WebSocket before its session starts, or None: the handshake was refused."""
        try:
            return self.unstarted.take(client_address(ws.scope))
        except Refused as err:
            response = self.answer(err)
            if "websocket.http.response" in ws.scope.get("extensions", {}):
                await ws.send_denial_response(response)
            else:
                await ws.close(1013)  # the handshake refused with 403: the server can send no other answer
            return None


class RateLimitMiddleware:
    """The rates of ``RATED_ROUTES``, checked before a request's body is read (inside the access
    rules, so that the requester is known and a request without a good key counts for nothing).
    Then a batch job's request (an upload, a render) holds one of the jobs' request places until it
    is answered; when the jobs are full, or as many such requests as they have places are in flight,
    it is answered ``busy`` at once, as the job would be, without its body read: a burst of uploads
    beyond the queue costs the server's process no upload parsed (it shares that process's CPU with
    the live sessions' frames)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = RATED_ROUTES.get((scope.get("method"), scope.get("path"))) if scope["type"] == "http" else None
        if kind is not None:
            gates: Gates = scope["app"].state.sonic.gates
            principal = scope.get("state", {}).get("principal")
            try:
                gates.rate(kind, client_address(scope), principal.name if principal else None)
            except Refused as err:
                await gates.answer(err)(scope, receive, send)
                return
            jobs = scope["app"].state.sonic.jobs
            if kind in JOBS and jobs is not None:
                try:
                    held = jobs.hold_request()
                except JobsBusy as busy:
                    gates.metrics.errors.labels(busy.code).inc()
                    await error_response(HTTPStatus.SERVICE_UNAVAILABLE, busy.code, str(busy))(scope, receive, send)
                    return
                with held:
                    await self.app(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    """The rates in front of ``app``'s routes, and refusals raised by routes answered with their
    status and ``Retry-After``. Call before ``auth.install``, which puts the access rules outside."""

    async def refused(request: Request, err: Refused) -> JSONResponse:
        return request.app.state.sonic.gates.answer(err)

    app.add_middleware(RateLimitMiddleware)
    app.add_exception_handler(Refused, refused)
