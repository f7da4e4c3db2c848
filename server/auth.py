"""Who may use the server, and how much: API keys, per-key limits, Origin checks.

The rule, applied once by ``AccessMiddleware`` to every request and WebSocket handshake:

- **Origin.** A request that carries an ``Origin`` header (a browser's) is answered only if that
  origin is the server's own (scheme, host and port of the ``Host`` it was sent to) or one given
  with ``--allow-origin``; otherwise 403 ``bad_origin`` (a WebSocket handshake: refused with the
  same 403 and JSON body, before it is accepted). No ``Origin`` (a program, not a page) passes.
  Without keys (development mode) the ``Host`` must also be a loopback name or address, so a page
  whose own name was made to point at 127.0.0.1 (DNS rebinding) cannot pass as the server's own.
- **Keys.** Every HTTP route under ``/v1/`` needs ``Authorization: Bearer KEY`` (401
  ``unauthorized`` without one, or with an unknown or revoked one), but for the public
  ``/v1/samples`` (sample photos) and ``/v1/auth`` (whether keys are needed). The page, ``/healthz``,
  ``/metrics`` and the API docs are public. The WebSocket stream authenticates at ``start`` (a
  browser cannot set headers on a WebSocket: its key comes in the ``api_key`` field; other
  clients may send the header on the handshake), in ``server.ws``.
- **Limits.** A session (live or a render) holds a ``Grant`` on its key: at most
  ``max_sessions`` at once (429 ``too_many_sessions``), and seconds of video counted against
  ``minutes_per_day`` for the UTC day (429 ``quota_exceeded`` at start once used up; a live
  session that reaches the limit ends with a fatal ``quota_exceeded``).

Without a key store (``Settings.keys_db`` None: development mode, and the library's default)
nobody needs a key and every requester is ``DEV``, named "dev", with no limits of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from sonic_rt.errors import SonicError

from .keys import KeyStore
from .origins import is_loopback, normal_origin

PUBLIC = ("/v1/samples", "/v1/auth")  # under /v1/, the routes that need no key
CLOSE_POLICY = 1008  # WebSocket close code: refused by these rules
HOW_TO_SEND = 'send it as "Authorization: Bearer KEY" (from a browser\'s WebSocket: the "api_key" field of start)'


class AccessDenied(SonicError):
    """A request refused by the access rules; ``status`` is its HTTP status."""

    status = 403


class Unauthorized(AccessDenied):
    code = "unauthorized"
    status = 401


class BadOrigin(AccessDenied):
    code = "bad_origin"
    status = 403


class TooManySessions(AccessDenied):
    code = "too_many_sessions"
    status = 429


class QuotaExceeded(AccessDenied):
    code = "quota_exceeded"
    status = 429


STATUS = {cls: cls.status for cls in (Unauthorized, BadOrigin, TooManySessions, QuotaExceeded)}


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: a key's name (the audit log's requester) and its limits."""

    name: str
    max_sessions: int | None = None  # at once; None: only the server's own limit
    minutes_per_day: float | None = None  # of video, per UTC day; None: unlimited


DEV = Principal("dev")  # everyone, when the server runs without keys


def bearer(authorization: str | None) -> str | None:
    """The key in an ``Authorization: Bearer KEY`` header (None: no header, or another scheme)."""
    scheme, _, key = (authorization or "").strip().partition(" ")
    return (key.strip() or None) if scheme.lower() == "bearer" else None


class Access:
    """Authentication, Origin checks and per-key limits of one server (held in ``AppState``).

    Per-key usage lives in memory, by UTC day; ``seed_usage`` adds what an earlier run recorded
    (the audit log) at start-up. Thread-safe (sessions end on the event loop, renders are checked
    from worker threads).
    """

    def __init__(self, store: KeyStore | None, allowed_origins: tuple[str, ...] = (),
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.store = store
        self.allowed_origins = frozenset(_checked_origin(o) for o in allowed_origins)
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, int] = {}
        self._used: dict[tuple[str, date], float] = {}  # seconds of video by (key name, UTC day)

    @property
    def mode(self) -> str:
        """``api_key`` (keys needed) or ``none`` (development mode)."""
        return "none" if self.store is None else "api_key"

    # -- who --------------------------------------------------------------------------------------

    def authenticate(self, key: str | None) -> Principal:
        """The principal a presented key stands for; ``Unauthorized`` for none, an unknown or a revoked one."""
        if self.store is None:
            return DEV
        if not key:
            raise Unauthorized(f"an API key is needed: {HOW_TO_SEND}")
        record = self.store.lookup(key)
        if record is None:
            raise Unauthorized("unknown API key")
        if not record.active:
            raise Unauthorized(f"this API key ({record.prefix}…, {record.name!r}) was revoked on {record.revoked}")
        return Principal(record.name, record.max_sessions, record.minutes_per_day)

    def check_origin(self, origin: str | None, scheme: str, host: str | None) -> None:
        """``BadOrigin`` unless ``origin`` is absent, the server's own (as addressed: ``scheme`` and
        ``Host``) or allowed; in development mode also unless ``host`` is a loopback name."""
        if self.store is None and host is not None:
            name = urlsplit(f"//{host}").hostname or ""
            if not is_loopback(name):
                raise BadOrigin(f"without API keys (development mode) the server only answers requests to a loopback "
                                f"address (127.0.0.1, ::1, localhost), not to {host!r}")  # fmt: skip
        if origin is None:
            return
        seen = normal_origin(origin)
        if seen is not None and (seen in self.allowed_origins or seen == normal_origin(f"{scheme}://{host}")):
            return
        raise BadOrigin(f"requests from pages at {origin} are not accepted here: only from the server's own pages "
                        "and from origins allowed with --allow-origin")  # fmt: skip

    # -- how much ---------------------------------------------------------------------------------

    def acquire(self, principal: Principal) -> Grant:
        """A session's hold on its key: ``QuotaExceeded`` once today's minutes are used up,
        ``TooManySessions`` at the key's limit of sessions at once."""
        with self._lock:
            left = self._left(principal)
            if left is not None and left <= 0:
                raise QuotaExceeded(self._quota_message(principal))
            running = self._sessions.get(principal.name, 0)
            if principal.max_sessions is not None and running >= principal.max_sessions:
                raise TooManySessions(f"the API key {principal.name!r} has {running} session(s) running, its limit; "
                                      "end one before starting another")  # fmt: skip
            self._sessions[principal.name] = running + 1
        return Grant(self, principal)

    def seed_usage(self, name: str, seconds: float, day: date | None = None) -> None:
        """Add ``seconds`` of video already generated by key ``name`` on ``day`` (default: today, UTC),
        e.g. from the audit log at start-up, so a restart does not hand out the day's minutes again."""
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, not {seconds}")
        with self._lock:
            day = day or self._today()
            self._used[name, day] = self._used.get((name, day), 0.0) + seconds

    def used_today(self, name: str) -> float:
        """Seconds of video key ``name`` generated today (UTC)."""
        with self._lock:
            return self._used.get((name, self._today()), 0.0)

    def sessions(self, name: str) -> int:
        """Sessions (live and renders) key ``name`` holds now."""
        with self._lock:
            return self._sessions.get(name, 0)

    def report(self, principal: Principal) -> dict:
        """A principal's limits and use, as ``GET /v1/auth`` tells it."""
        return {
            "name": principal.name, "max_sessions": principal.max_sessions,
            "minutes_per_day": principal.minutes_per_day, "sessions": self.sessions(principal.name),
            "minutes_used_today": round(self.used_today(principal.name) / 60, 3),
        }  # fmt: skip

    def _today(self) -> date:
        return datetime.fromtimestamp(self._clock(), UTC).date()

    def _left(self, principal: Principal) -> float | None:
        """Seconds of video left today (None: unlimited); call with the lock held."""
        if principal.minutes_per_day is None:
            return None
        today = self._today()
        for old in [k for k in self._used if k[1] < today]:
            del self._used[old]
        return principal.minutes_per_day * 60 - self._used.get((principal.name, today), 0.0)

    def _quota_message(self, principal: Principal) -> str:
        renews = datetime.combine(self._today() + timedelta(days=1), datetime.min.time(), UTC)
        return (f"the API key {principal.name!r} has used its {principal.minutes_per_day:g} minutes of video "
                f"for today; more from {renews:%Y-%m-%d %H:%M} UTC")  # fmt: skip

    def _spend(self, principal: Principal, seconds: float) -> bool:
        with self._lock:
            key = (principal.name, self._today())
            self._used[key] = self._used.get(key, 0.0) + seconds
            left = self._left(principal)
        return left is None or left > 1e-9

    def _release(self, principal: Principal) -> None:
        with self._lock:
            self._sessions[principal.name] = max(0, self._sessions.get(principal.name, 0) - 1)


class Grant:
    """One session's hold on its key: a place among the key's sessions, and the video it spends."""

    def __init__(self, access: Access, principal: Principal) -> None:
        self.access = access
        self.principal = principal
        self.released = False

    def spend(self, seconds: float) -> bool:
        """Count ``seconds`` of video made; False once the key's minutes for today are used up."""
        return self.access._spend(self.principal, seconds)

    def need(self, seconds: float) -> None:
        """``QuotaExceeded`` unless ``seconds`` more of video fit in what is left today (a render's
        check once its length is known)."""
        with self.access._lock:
            left = self.access._left(self.principal)
        if left is not None and seconds > left:
            raise QuotaExceeded(f"this render is {seconds:.1f} s of video and the API key {self.principal.name!r} "
                                f"has {max(0.0, left):.1f} s left today")  # fmt: skip

    def quota_message(self) -> str:
        return self.access._quota_message(self.principal)

    def release(self) -> None:
        """Give the place back (once; later calls do nothing)."""
        if not self.released:
            self.released = True
            self.access._release(self.principal)


def _checked_origin(origin: str) -> str:
    normal = normal_origin(origin)
    if normal is None:
        raise ValueError(f"not an origin: {origin!r} (scheme://host[:port], e.g. https://example.com)")
    return normal


def protected(path: str) -> bool:
    """Whether an HTTP path needs a key."""
    return path.startswith("/v1/") and not any(path == p or path.startswith(p + "/") for p in PUBLIC)


class AccessMiddleware:
    """The access rules in front of every route (see the module's docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state.sonic
        headers = Headers(scope=scope)
        try:
            state.access.check_origin(headers.get("origin"), scope["scheme"], headers.get("host"))
            if scope["type"] == "http" and protected(scope["path"]):
                principal = state.access.authenticate(bearer(headers.get("authorization")))
                scope.setdefault("state", {})["principal"] = principal
        except AccessDenied as err:
            state.metrics.errors.labels(err.code).inc()
            response = denial(err)
            if scope["type"] == "http":
                await response(scope, receive, send)
            elif "websocket.http.response" in scope.get("extensions", {}):
                await WebSocket(scope, receive, send).send_denial_response(response)  # 403 with the JSON body
            else:
                await WebSocket(scope, receive, send).close(CLOSE_POLICY)  # 403, where the server can send no body
            return
        await self.app(scope, receive, send)


def denial(err: AccessDenied) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
    return JSONResponse({"error": {"code": err.code, "message": str(err)}}, status_code=err.status, headers=headers)


def requester(request: Request) -> Principal:
    """The principal of a request to a protected route (a FastAPI dependency)."""
    principal = request.scope.get("state", {}).get("principal")
    if principal is None:  # a route outside the protected paths that still wants to know
        principal = request.app.state.sonic.access.authenticate(bearer(request.headers.get("authorization")))
    return principal


Requester = Annotated[Principal, Depends(requester)]  # a route's parameter: who asks
router = APIRouter()


@router.get("/v1/auth", summary="Whether API keys are needed; with a key: whose it is, its limits and use today")
async def auth_info(request: Request) -> dict:
    access: Access = request.app.state.sonic.access
    answer: dict = {"auth": access.mode}
    key = bearer(request.headers.get("authorization"))
    if key is not None or access.store is None:
        answer["principal"] = access.report(access.authenticate(key))
    return answer


def install(app: FastAPI, allowed_origins: tuple[str, ...], keyed: bool = True) -> None:
    """Put the access rules in front of ``app`` (CORS outermost, for pages at allowed origins), add
    ``/v1/auth``, and, when the server has keys (``keyed``), mark the routes that need one in the
    OpenAPI schema (``/docs``' Authorize); in development mode the schema says no key is needed,
    as is the case."""
    app.include_router(router)
    app.add_middleware(AccessMiddleware)
    schema = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            built = schema()
            if keyed:
                schemes = built.setdefault("components", {}).setdefault("securitySchemes", {})
                schemes["apiKey"] = {"type": "http", "scheme": "bearer", "description": "an API key: srt_…"}
                for path, operations in built["paths"].items():
                    for operation in operations.values() if protected(path) else ():
                        operation["security"] = [{"apiKey": []}]
        return app.openapi_schema

    app.openapi = openapi
    if allowed_origins:
        origins = sorted({_checked_origin(o) for o in allowed_origins})
        exposed = ["X-Frames", "X-Seconds", "X-Wall-Seconds", "X-Watermark", "X-Recording-Complete"]
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], expose_headers=exposed)  # fmt: skip
