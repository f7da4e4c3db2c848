"""What a running session does with control messages and reports as events, whichever transport
carries them: a WebSocket (``server.ws``) or a WebRTC data channel (``server.webrtc``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sonic_rt.audio import timings, visemes
from sonic_rt.motion import vector
from streaming.live import LiveSession
from streaming.recording import Recording
from streaming.session import OutFrame

from . import protocol as p
from .audit import SessionRecord
from .proxy import GeneratorLost
from .state import AppState, BadParams

STATS_EVERY_S = 1.0


def failure(err: Exception) -> tuple[str, str]:
    """The fatal error a client is told when ``err`` ends its session: the loss of the session's
    generator replica when serving on Ray (``generator_lost``; the other sessions go on), else a
    bug (``internal``, logged)."""
    if isinstance(err, GeneratorLost):
        return err.code, str(err)
    return "internal", "the server failed on this session (logged); it is closed"


class Control:
    """One live session's say/flush/interrupt/params/timings, and the events its frames raise:
    speech start/end, motion and visemes (opt-in), stats once a second; its recording, if asked for; and its
    audit record, ended by ``close``."""

    def __init__(self, state: AppState, live: LiveSession, audit: SessionRecord,
                 emit: Callable[[dict], Awaitable[None]], record: bool = False,
                 motion_events: bool = False, viseme_events: bool = False) -> None:  # fmt: skip
        self.state, self.live, self.audit, self.emit = state, live, audit, emit
        self.session_id = audit.id
        audit.follow(live.session)
        self.motion_events = motion_events
        self.viseme_events = viseme_events
        size = live.session.animator.identity.out_size
        self.recording: Recording | None = state.recordings.new(audit.id, size, live.session.fps) if record else None
        self._speaking = False
        self.frames = 0  # frames taken for sending (``record``)
        self._stats = _Stats(live, state)

    def ready(self, **extra) -> dict:
        """The ``ready`` event: what the session is and where its recording will be."""
        animator = self.live.session.animator
        size = animator.identity.out_size
        return {
            "type": "ready", "protocol": p.VERSION, "session": self.session_id, "fps": animator.fps,
            "width": size, "height": size, "latency_ms": animator.latency_ms,
            "params": {**animator.motion_params.__dict__, **animator.video_params.__dict__},
            "recording": f"/v1/sessions/{self.session_id}/recording.mp4" if self.recording else None,
            "watermark": f"{animator.marks.watermark:08x}", "label": animator.marks.label,
            **self.state.placement(self.live.session), **extra,
        }  # fmt: skip

    async def apply(self, message: p.Say | p.Flush | p.Interrupt | p.Params | p.Timings) -> None:
        """Carry out one control message (``stop`` is the transport's: it ends the connection)."""
        if isinstance(message, p.Timings):
            end = None if message.end_ms is None else message.end_ms / 1000
            marks = timings.parse(message.format, message.marks, end=end)  # BadTimings: nothing placed
            await self.live.place_timings(marks, None if message.offset_ms is None else message.offset_ms / 1000)
        elif isinstance(message, p.Say):
            await self.live.say(message.text, message.voice)
        elif isinstance(message, p.Flush):
            await self.live.flush()
        elif isinstance(message, p.Interrupt):
            await self.emit({"type": "interrupted", "frame": await self.live.interrupt()})
        elif isinstance(message, p.Params):
            try:
                frame = await self.live.set_scales(**message.params.model_dump())
            except ValueError as err:
                raise BadParams(str(err)) from None
            params = self.live.session.animator.motion_params
            values = {"dynamic_scale": params.dynamic_scale, "motion_scale": params.motion_scale}
            await self.emit({"type": "params", "params": values, "frame": frame})

    def events(self, frame: OutFrame) -> list[dict]:
        """The events a frame that is being sent raises."""
        out = []
        if frame.speech != self._speaking:
            self._speaking = frame.speech
            out.append({"type": "speech_start" if frame.speech else "speech_end", "frame": frame.index})
        if self.motion_events:
            values = {name: round(float(v), 4) for name, v in zip(vector.NAMES, frame.motion, strict=True)}
            out.append({"type": "motion", "frame": frame.index, "pts": frame.pts, "values": values})
        if self.viseme_events and frame.visemes is not None:
            weights = visemes.as_dict(frame.visemes)
            out.append({"type": "visemes", "frame": frame.index, "pts": frame.pts, "weights": weights})
        if self._stats.due():
            out.append(self._stats.event())
        return out

    def record(self, frame: OutFrame) -> None:
        """Take a frame for sending: count it, and add it to the recording if there is one (then
        blocking: call it on the executor). ``frames`` counts what was taken, so a session stopped
        while a frame is on its way reports as many frames as its recording holds."""
        if self.recording is not None:
            self.recording.add(frame)
        self.frames = frame.index + 1

    async def close(self, reason: str) -> None:
        """End the session's recording and its audit record (``reason``: how it ended; the first
        call's reason is the one recorded)."""
        loop = asyncio.get_running_loop()
        if self.recording is not None:
            await loop.run_in_executor(self.state.executor, self.recording.close)
        await loop.run_in_executor(self.state.executor, self.state.end_session, self.live.session)
        await self.audit.end(reason)


class _Stats:
    def __init__(self, live: LiveSession, state: AppState) -> None:
        self.live, self.metrics = live, state.metrics
        self.next = time.monotonic() + STATS_EVERY_S
        self.last_frames = 0
        self.last_time = time.monotonic()
        self.filled = 0.0
        self.stalls = 0

    def due(self) -> bool:
        return time.monotonic() >= self.next

    def event(self) -> dict:
        now, s = time.monotonic(), self.live.session
        fps = (s.frames_out - self.last_frames) / (now - self.last_time)
        self.metrics.filled.inc((s.filled_ms - self.filled) / 1000)
        self.metrics.stalls.inc(self.live.stalls - self.stalls)
        self.filled, self.stalls = s.filled_ms, self.live.stalls
        self.last_frames, self.last_time, self.next = s.frames_out, now, now + STATS_EVERY_S
        return {
            "type": "stats", "frames": s.frames_out, "fps": round(fps, 2), "backlog_ms": round(s.backlog_ms, 1),
            "filled_ms": s.filled_ms, "skipped_ms": s.skipped_ms, "stalls": self.live.stalls,
        }  # fmt: skip
