"""``WS /v1/stream``: one live session per connection, speaking ``server.protocol``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from sonic_rt.audio.decode import ChunkResampler
from sonic_rt.errors import SonicError
from sonic_rt.provenance.audit import DISCONNECTED, SERVER_STOPPED, STOPPED, end_reason
from sonic_rt.provenance.marks import Marks
from streaming.encoders import make_encoder
from streaming.live import LiveSession

from . import protocol as p
from .auth import CLOSE_POLICY, AccessDenied, Grant, bearer
from .control import Control, failure
from .gates import RateLimited, StartTimeout, client_address
from .proxy import GeneratorLost
from .state import AppState, Busy, split_params

log = logging.getLogger(__name__)
router = APIRouter()
CLOSE_NORMAL, CLOSE_INTERNAL, CLOSE_BUSY = 1000, 1011, 1013  # and CLOSE_POLICY: refused by the access rules
# (1008, also start_timeout: no session started in time; rate_limited closes with 1013, try again later)
SERVICE_RESTART = 1012  # the close code uvicorn gives its WebSockets when the server stops
# A client that takes nothing we send for this long (its socket's buffers full: it stopped reading
# without going away) is a slow consumer, and its session ends. Until then frames wait for the
# socket, one at a time, and the media clock moves on (nothing piles up here).
SEND_TIMEOUT_S = 5.0
SLOW_CONSUMER = "slow_consumer"


class SlowConsumer(Exception):
    """The client has taken nothing for ``SEND_TIMEOUT_S``."""


@router.websocket(p.PATH)
async def stream(ws: WebSocket) -> None:
    state = ws.app.state.sonic
    place = await state.gates.hold_websocket(ws)  # None: too many WebSockets without a session, refused
    if place is None:
        return
    try:
        await ws.accept()
        connection = Connection(ws, state)
        connection._spawn(connection._expect_start(state.gates.limits.start_timeout_s, place.release))
        await connection.run()
    finally:
        place.release()


class Connection:
    """The protocol state of one WebSocket: before ``start``, streaming, stopped."""

    def __init__(self, ws: WebSocket, state: AppState) -> None:
        self.ws = ws
        self.state = state
        self.live: LiveSession | None = None
        self.control: Control | None = None
        self.start: p.Start | None = None
        self.session_id = uuid.uuid4().hex
        self._send_lock = asyncio.Lock()
        self._pump: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._grant: Grant | None = None  # the session's hold on its API key
        self._close_code = CLOSE_NORMAL
        self._stopping = False
        self._slow = False  # the client stopped taking what we send
        self._failed = False
        self._receiver: asyncio.Task | None = None  # the task running ``run``
        self._closing = False
        self._end = DISCONNECTED  # how the session ended, for its audit record
        self._started = asyncio.Event()  # the session is streaming
        self._start_lock = asyncio.Lock()  # held while a start is carried out

    async def run(self) -> None:
        self._receiver = asyncio.current_task()
        try:
            while not self._stopping:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    if message.get("code") == SERVICE_RESTART:
                        self._end = SERVER_STOPPED
                    break
                if message.get("text") is not None:
                    await self._guard(self._on_text(message["text"]))
                elif message.get("bytes") is not None:
                    await self._guard(self._on_audio(message["bytes"]))
        except WebSocketDisconnect:
            pass
        except asyncio.CancelledError:
            if not self._slow:
                raise
            self._receiver.uncancel()  # the frame pump found a slow consumer: its session ends now
        except Exception as err:
            await self._fail(err)
        finally:
            await self._close()

    async def _guard(self, work) -> None:
        """Answer a bad message with its error code and carry on."""
        try:
            await work
        except p.ProtocolError as err:
            await self._error(err.code, str(err))
        except GeneratorLost:
            raise  # not the message's fault: the session cannot go on
        except SonicError as err:
            await self._error(err.code, str(err))
        except SlowConsumer:
            pass  # the frame pump's next send finds it too, and ends the session

    async def _on_text(self, text: str) -> None:
        message = p.parse_control(text)
        if isinstance(message, p.Start):
            async with self._start_lock:
                await self._start(message)
            return
        if self.live is None:
            raise p.ProtocolError("not_started", f"send a start message before {message.type!r}")
        if isinstance(message, p.Stop):
            self._stopping = True  # a say still on its way meets the ended session: no failure of its
            await _cancel(self._pump)  # no more frames: the recording is complete when "stopped" says so
            await self.control.close(STOPPED)
            await self._event({"type": "stopped", "frames": self.control.frames})
        elif isinstance(message, p.Say):
            self._spawn(self._apply(message))  # synthesis takes a while: keep receiving
        else:
            await self.control.apply(message)

    async def _start(self, start: p.Start) -> None:
        if self.live is not None:
            raise p.ProtocolError("already_started", "this connection already has a session")
        try:  # the key in start (browsers), else the handshake's Authorization header
            principal = self.state.access.authenticate(start.api_key or bearer(self.ws.headers.get("authorization")))
        except AccessDenied as err:
            return await self._refuse(err, CLOSE_POLICY)
        try:  # sessions started per minute, by this address and by this key
            self.state.gates.rate("sessions", client_address(self.ws.scope), principal.name)
        except RateLimited as err:
            self.state.gates.count(err.reason)
            return await self._refuse(err, CLOSE_BUSY)
        motion_params, video_params = split_params(start.params.model_dump())
        ChunkResampler(start.audio.sample_rate, start.audio.channels)  # refuses a rate or layout it cannot take
        try:
            self._grant = self.state.admit(principal)
        except Busy as err:
            return await self._refuse(err, CLOSE_BUSY)
        except AccessDenied as err:
            return await self._refuse(err, CLOSE_POLICY)
        t0 = time.perf_counter()
        loop = asyncio.get_running_loop()
        audit = None
        try:
            portrait = await loop.run_in_executor(self.state.executor, self.state.portraits.lookup, start.portrait)
            audit = await self.state.audit.start_session(self.ws, principal.name, "websocket", self.session_id,
                                                         portrait, motion_params, video_params, start.record,
                                                         start.label)  # fmt: skip
            marks = Marks(audit.watermark, start.label)
            session = await loop.run_in_executor(
                self.state.executor, self.state.new_session, portrait.identity, motion_params, video_params, marks
            )
            live = LiveSession(session, self.state.executor)
            control = Control(self.state, live, audit, self._event, record=start.record,
                              motion_events=start.motion_events, viseme_events=start.viseme_events)  # fmt: skip
        except BaseException as err:
            if audit is not None:
                await audit.end(end_reason(err))
            self._release()
            raise
        self.start, self.live, self.control = start, live, control
        self._started.set()
        self.state.metrics.sessions.labels("websocket").inc()
        self.state.metrics.sessions_active.labels("websocket").inc()
        await self._event(self.control.ready(
            portrait=start.portrait, video=start.video.codec,
            audio={"format": "s16le", "sample_rate": 16000, "channels": 1},
        ))  # fmt: skip
        self._pump = asyncio.create_task(self._send_frames(t0))

    async def _expect_start(self, seconds: float, started) -> None:
        """Close the connection (a fatal ``start_timeout``, close code 1008) unless a session has
        started ``seconds`` after it opened; call ``started()`` once one has."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._started.wait()
            started()
            return
        async with self._start_lock:  # a start under way finishes first
            if self.live is not None or self._stopping:
                started()
                return
            self.state.gates.count("start_timeout")
            await self._refuse(StartTimeout(f"no session started within {seconds:g} s of connecting: send start "
                                            "first"), CLOSE_POLICY)  # fmt: skip
            with contextlib.suppress(WebSocketDisconnect, SlowConsumer):
                await self._deliver(self.ws.close, CLOSE_POLICY)  # the receive loop ends on it

    async def _refuse(self, err: SonicError, close_code: int) -> None:
        """No session: a fatal error, then the connection closes with ``close_code``."""
        await self._error(err.code, str(err), fatal=True)
        self._stopping, self._close_code = True, close_code

    async def _on_audio(self, data: bytes) -> None:
        if self.live is None:
            raise p.ProtocolError("not_started", "send a start message before audio")
        if len(data) > p.MAX_AUDIO_BYTES:
            raise p.ProtocolError("message_too_large", f"audio messages are limited to {p.MAX_AUDIO_BYTES} bytes")
        fmt = self.start.audio
        dtype, width = p.AUDIO_FORMATS[fmt.format]
        if len(data) % (width * fmt.channels):
            raise p.ProtocolError(
                "bad_audio_chunk",
                f"{len(data)} bytes is not a whole number of {fmt.channels}-channel {fmt.format} samples",
            )
        pcm = np.frombuffer(data, dtype=dtype).astype(np.dtype(dtype).newbyteorder("="))
        await self.live.push_audio(pcm.reshape(-1, fmt.channels), fmt.sample_rate, fmt.channels)

    async def _send_frames(self, t0: float) -> None:
        loop = asyncio.get_running_loop()
        start, live, control, metrics = self.start, self.live, self.control, self.state.metrics
        encoder = make_encoder(start.video.codec, live.session.animator.identity.out_size, live.session.fps,
                               start.video.quality)  # fmt: skip
        codec = p.VIDEO_CODECS[start.video.codec]

        def encode(frame):
            control.record(frame)
            return encoder.encode(frame.image)

        try:
            async for frame in live.frames():
                payload, key = await loop.run_in_executor(self.state.executor, encode, frame)
                if frame.index == 0:
                    metrics.first_frame.observe(time.perf_counter() - t0)
                flags = (p.FLAG_KEYFRAME if key else 0) | (p.FLAG_SPEECH if frame.speech else 0)
                pcm = p.pcm16(frame.audio).astype("<i2").tobytes()
                sent = time.time()
                await self._send(p.pack_media(p.KIND_AUDIO, p.AUDIO_S16LE_16K, flags, frame.index, frame.pts,
                                              frame.source, sent, pcm))  # fmt: skip
                await self._send(p.pack_media(p.KIND_VIDEO, codec, flags, frame.index, frame.pts, frame.source,
                                              sent, payload))  # fmt: skip
                metrics.frames.labels("websocket").inc()
                for event in control.events(frame):
                    await self._event(event)
                if not self._grant.spend(1 / live.session.fps):  # the key's minutes for today are used up
                    await self._error("quota_exceeded", self._grant.quota_message(), fatal=True)
                    self._end = "error: quota_exceeded"  # as the client is told
                    self._stopping, self._close_code = True, CLOSE_POLICY
                    await self._deliver(self.ws.close, CLOSE_POLICY)  # the receive loop ends on it
                    return
        except WebSocketDisconnect:
            self._stopping = True  # the client is gone; the receive loop ends too
        except SlowConsumer:
            self._end, self._stopping = f"error: {SLOW_CONSUMER}", True
            if not self._closing:
                self._receiver.cancel()  # it may wait for a message forever: the session ends now
        except Exception as err:
            await self._fail(err)

    async def _apply(self, message: p.Say) -> None:
        """A control message carried out in the background: its error answered, a failure not lost."""
        try:
            await self._guard(self.control.apply(message))
        except WebSocketDisconnect:
            pass
        except Exception as err:
            await self._fail(err)

    async def _fail(self, err: Exception) -> None:
        """Not the client's doing — a bug (``internal``), or the loss of the session's generator
        replica when serving on Ray (``generator_lost``; the other sessions go on): log it, say so
        (fatal) and end the session (closing the socket also ends the receive loop), rather than
        leave it open and frozen."""
        if self._failed:
            return  # the receive loop and the frame pump can both meet the same failure
        if self._stopping and isinstance(err, GeneratorLost):
            return  # the session is ending (stop): a call still on its way met its end, nothing failed
        self._failed = True
        log.error("session %s failed", self.session_id, exc_info=err)
        code, message = failure(err)
        self._end = f"error: {code}"  # as the client is told (end_reason would call a ValueError bad_params)
        await self._error(code, message, fatal=True)
        self._stopping, self._close_code = True, CLOSE_INTERNAL
        with contextlib.suppress(WebSocketDisconnect, SlowConsumer):
            await self._deliver(self.ws.close, CLOSE_INTERNAL)

    async def _send(self, data: bytes) -> None:
        await self._deliver(self.ws.send_bytes, data)

    async def _event(self, event: dict) -> None:
        await self._deliver(self.ws.send_text, json.dumps(event, separators=(",", ":")))  # ASCII: whatever it quotes

    async def _deliver(self, send, *args) -> None:
        """``send(*args)`` on the socket, one at a time; ``SlowConsumer`` if it waits ``SEND_TIMEOUT_S``
        for the client to take what was sent before (and at once after that has happened),
        ``WebSocketDisconnect`` if the client has gone."""
        async with self._send_lock:
            if self._slow:
                raise SlowConsumer
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S), _client_gone():
                    await send(*args)
            except TimeoutError:
                self._slow = True
                self.state.metrics.errors.labels(SLOW_CONSUMER).inc()
                raise SlowConsumer from None

    async def _error(self, code: str, message: str, fatal: bool = False) -> None:
        self.state.metrics.errors.labels(code).inc()
        with contextlib.suppress(WebSocketDisconnect, SlowConsumer):
            await self._event(p.error_event(code, message, fatal))

    def _spawn(self, work) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self) -> None:
        self._closing = True
        for task in [self._pump, *self._tasks]:
            await _cancel(task)
        if self.live is not None:
            self.state.metrics.sessions_active.labels("websocket").dec()
            await self.control.close(self._end)
        self._release()
        with contextlib.suppress(WebSocketDisconnect, SlowConsumer):
            await self._deliver(self.ws.close, self._close_code)

    def _release(self) -> None:
        if self._grant is not None:
            self.state.release(self._grant)


@contextlib.asynccontextmanager
async def _client_gone():
    """A send that fails because the client has gone (the socket closed under it) raises
    ``WebSocketDisconnect``, so that only that ends a session quietly."""
    try:
        yield
    except (RuntimeError, ConnectionError) as err:
        raise WebSocketDisconnect(CLOSE_NORMAL, str(err)) from err


async def _cancel(task: asyncio.Task | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
