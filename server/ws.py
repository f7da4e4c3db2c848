"""``WS /v1/stream``: one live session per connection, speaking ``server.protocol``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from sonic_rt import motion
from sonic_rt.audio import ChunkResampler
from sonic_rt.errors import SonicError
from streaming.encoders import make_encoder
from streaming.live import LiveSession
from streaming.session import OutFrame

from . import protocol as p
from .state import AppState, Busy, split_params

log = logging.getLogger(__name__)
router = APIRouter()
STATS_EVERY_S = 1.0


@router.websocket(p.PATH)
async def stream(ws: WebSocket) -> None:
    await ws.accept()
    await Connection(ws, ws.app.state.sonic).run()


class Connection:
    """The protocol state of one WebSocket: before ``start``, streaming, stopped."""

    def __init__(self, ws: WebSocket, state: AppState) -> None:
        self.ws = ws
        self.state = state
        self.live: LiveSession | None = None
        self.start: p.Start | None = None
        self.session_id = uuid.uuid4().hex
        self._send_lock = asyncio.Lock()
        self._pump: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._has_slot = False
        self._busy = False
        self._stopping = False

    async def run(self) -> None:
        try:
            while not self._stopping:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message.get("text") is not None:
                    await self._guard(self._on_text(message["text"]))
                elif message.get("bytes") is not None:
                    await self._guard(self._on_audio(message["bytes"]))
        except WebSocketDisconnect:
            pass
        except Exception:
            log.exception("session %s failed", self.session_id)
            await self._error("internal", "the server failed on this session (logged); it is closed", fatal=True)
        finally:
            await self._close()

    async def _guard(self, work) -> None:
        """Answer a bad message with its error code and carry on."""
        try:
            await work
        except p.ProtocolError as err:
            await self._error(err.code, str(err))
        except SonicError as err:
            await self._error(err.code, str(err))

    async def _on_text(self, text: str) -> None:
        message = p.parse_control(text)
        if isinstance(message, p.Start):
            await self._start(message)
            return
        if self.live is None:
            raise p.ProtocolError("not_started", f"send a start message before {message.type!r}")
        if isinstance(message, p.Say):
            self._spawn(self._say(message))
        elif isinstance(message, p.Flush):
            await self.live.flush()
        elif isinstance(message, p.Interrupt):
            frame = await self.live.interrupt()
            await self._event({"type": "interrupted", "frame": frame})
        elif isinstance(message, p.Stop):
            await self._event({"type": "stopped", "frames": self.live.session.frames_out})
            self._stopping = True

    async def _start(self, start: p.Start) -> None:
        if self.live is not None:
            raise p.ProtocolError("already_started", "this connection already has a session")
        motion_params, video_params = split_params(start.params.model_dump())
        ChunkResampler(start.audio.sample_rate, start.audio.channels)  # refuses a rate or layout it cannot take
        try:
            self.state.admit()
        except Busy as err:
            await self._error(err.code, str(err), fatal=True)
            self._stopping = self._busy = True
            return
        self._has_slot = True
        t0 = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            identity = await loop.run_in_executor(self.state.executor, self.state.portraits.get, start.portrait)
            session = await loop.run_in_executor(
                self.state.executor, self.state.new_session, identity, motion_params, video_params
            )
        except BaseException:
            self._release()
            raise
        self.start = start
        self.live = LiveSession(session, self.state.executor)
        self.state.metrics.sessions.labels("websocket").inc()
        self.state.metrics.sessions_active.labels("websocket").inc()
        size = identity.out_size
        await self._event({
            "type": "ready", "protocol": p.VERSION, "session": self.session_id, "portrait": start.portrait,
            "fps": session.fps, "width": size, "height": size, "video": start.video.codec,
            "audio": {"format": "s16le", "sample_rate": 16000, "channels": 1},
            "latency_ms": session.animator.latency_ms,
            "params": {**motion_params.__dict__, **video_params.__dict__},
        })  # fmt: skip
        self._pump = asyncio.create_task(self._send_frames(t0))

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

    async def _say(self, message: p.Say) -> None:
        await self._guard(self.live.say(message.text, message.voice))

    async def _send_frames(self, t0: float) -> None:
        loop = asyncio.get_running_loop()
        start, live, metrics = self.start, self.live, self.state.metrics
        encoder = make_encoder(start.video.codec, live.session.animator.identity.out_size, live.session.fps,
                               start.video.quality)  # fmt: skip
        codec = p.VIDEO_CODECS[start.video.codec]
        speaking = False
        stats = _Stats(live)
        try:
            async for frame in live.frames():
                payload, key = await loop.run_in_executor(self.state.executor, encoder.encode, frame.image)
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
                if frame.speech != speaking:
                    speaking = frame.speech
                    await self._event({"type": "speech_start" if speaking else "speech_end", "frame": frame.index})
                if start.motion_events:
                    await self._event(_motion_event(frame))
                if stats.due():
                    await self._event(stats.event(metrics))
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            self._stopping = True  # the client is gone; the receive loop ends too

    async def _send(self, data: bytes) -> None:
        async with self._send_lock:
            await self.ws.send_bytes(data)

    async def _event(self, event: dict) -> None:
        async with self._send_lock:
            await self.ws.send_json(event)

    async def _error(self, code: str, message: str, fatal: bool = False) -> None:
        self.state.metrics.errors.labels(code).inc()
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, ConnectionError):
            await self._event(p.error_event(code, message, fatal))

    def _spawn(self, work) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self) -> None:
        for task in [self._pump, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.live is not None:
            self.state.metrics.sessions_active.labels("websocket").dec()
        self._release()
        with contextlib.suppress(RuntimeError, ConnectionError, WebSocketDisconnect):
            await self.ws.close(1013 if self._busy else 1000)

    def _release(self) -> None:
        if self._has_slot:
            self.state.slots.release()
            self._has_slot = False


class _Stats:
    def __init__(self, live: LiveSession) -> None:
        self.live = live
        self.next = time.monotonic() + STATS_EVERY_S
        self.last_frames = 0
        self.last_time = time.monotonic()
        self.filled = 0.0
        self.stalls = 0

    def due(self) -> bool:
        return time.monotonic() >= self.next

    def event(self, metrics) -> dict:
        now, s = time.monotonic(), self.live.session
        fps = (s.frames_out - self.last_frames) / (now - self.last_time)
        metrics.filled.inc((s.filled_ms - self.filled) / 1000)
        metrics.stalls.inc(self.live.stalls - self.stalls)
        self.filled, self.stalls = s.filled_ms, self.live.stalls
        self.last_frames, self.last_time, self.next = s.frames_out, now, now + STATS_EVERY_S
        return {
            "type": "stats", "frames": s.frames_out, "fps": round(fps, 2), "backlog_ms": round(s.backlog_ms, 1),
            "filled_ms": s.filled_ms, "skipped_ms": s.skipped_ms, "stalls": self.live.stalls,
        }  # fmt: skip


def _motion_event(frame: OutFrame) -> dict:
    values = {name: round(float(v), 4) for name, v in zip(motion.NAMES, frame.motion, strict=True)}
    return {"type": "motion", "frame": frame.index, "pts": frame.pts, "values": values}
