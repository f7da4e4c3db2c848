"""WebRTC with aiortc: signalling over HTTP, the browser's microphone in, video and speech out.

``POST /v1/webrtc/offer`` takes the browser's SDP offer (ICE gathered: aiortc does not trickle)
with the portrait and parameters, and answers with the server's SDP. The offer's audio track is
the microphone: it is fed to the session as it arrives (48 kHz stereo Opus, decoded by aiortc).
The answer carries two tracks on one stream: the talking face, one frame per session frame, and
the audio that plays with it, paced in 20 ms frames by its own clock so the browser's audio
buffer stays small (bursty audio drags Chrome's video latency with it). A data channel, if the
offer opens one, speaks the WebSocket protocol's control messages (say, flush, interrupt,
params, stop) and events (ready, speech_start/end, interrupted, params, stats, error).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
import time
import uuid
from collections import deque
from typing import Literal

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamError
from fastapi import APIRouter, Request
from pydantic import BaseModel

from sonic_rt import audio
from sonic_rt.errors import SonicError
from sonic_rt.provenance.audit import DISCONNECTED, STOPPED, end_reason
from sonic_rt.provenance.marks import Marks
from streaming.live import LiveSession

from . import protocol as p
from .audit import SessionRecord
from .auth import Grant, Principal, Requester
from .control import Control, failure
from .errors import BUSY, error_response
from .gates import Place, client_address
from .proxy import GeneratorLost
from .state import AppState, split_params

log = logging.getLogger(__name__)
router = APIRouter()
VIDEO_CLOCK = 90_000
AUDIO_PTIME = 0.020
AUDIO_FRAME = int(audio.SAMPLE_RATE * AUDIO_PTIME)  # 320 samples of 16 kHz mono per RTP audio frame
RECEIVE_BUFFER_MS = 80  # aiortc holds 4 packets of incoming audio before decoding (its jitter buffer's prefetch)
START_QUEUED = int(audio.SAMPLE_RATE * 0.04)  # the audio kept from before the track's first frame
# frames come 40 ms of audio at a time and leave 20 ms at a time: up to 80 ms wait in a steady
# stream; more means frames came in a burst (catching up after a slow moment) and is dropped
MAX_QUEUED = int(audio.SAMPLE_RATE * 0.08)


class Offer(BaseModel):
    sdp: p.Text
    type: Literal["offer"] = "offer"  # the server answers offers (an "answer" here was a 500)
    portrait: p.Text = "sample:astronaut"
    params: p.SessionParams = p.SessionParams()
    record: bool = False  # keep the session as an MP4 to download (``ready`` says where)
    label: bool = False  # draw a visible "AI-generated" label on the video
    motion_events: bool = False  # a ``motion`` event per frame on the data channel
    viseme_events: bool = False  # a ``visemes`` event per frame on the data channel


def use_host_addresses(addresses: tuple[str, ...]) -> None:
    """Offer exactly these host ICE candidates (aioice skips 127.0.0.1 on its own; loopback tests need it)."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(addresses)


class FaceTrack(MediaStreamTrack):
    """The session's frames as a video track (one per session frame, stamped on its timeline)."""

    kind = "video"

    def __init__(self, fps: int) -> None:
        super().__init__()
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=2)
        self._ticks = VIDEO_CLOCK // fps

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        index, image = await self.queue.get()
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = index * self._ticks
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


class SpeechTrack(MediaStreamTrack):
    """The audio that goes with the frames, 20 ms at a time at real-time pace (silence if none yet).

    Frames come at the same real-time rate as the audio leaves, so whatever waits here is latency
    that never drains, and Chrome holds the video back to match it (measured: the face's voice
    came 600+ ms after the microphone's speech with 200 ms waiting here). So the audio fed while
    the connection was being set up (the session starts with the offer) is dropped at the first
    frame but for the last ``START_QUEUED`` samples, and after a burst of frames (the session
    catching up after a slow moment) the oldest is dropped down to ``MAX_QUEUED``, as
    ``FaceTrack`` keeps only the newest frames.
    """

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.buffer: deque[np.ndarray] = deque()
        self.queued = 0  # samples waiting
        self.dropped = 0  # samples dropped because too many waited
        self._pending = np.zeros(0, np.float32)
        self._start: float | None = None
        self._sent = 0

    def feed(self, samples: np.ndarray) -> None:
        self.buffer.append(samples)
        self.queued += len(samples)
        self._trim(MAX_QUEUED)

    def _trim(self, limit: int) -> None:
        """Drop the oldest pieces while more than ``limit`` samples wait (never the newest piece)."""
        while self.queued > limit and len(self.buffer) > 1:
            old = self.buffer.popleft()
            self.queued -= len(old)
            self.dropped += len(old)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
            self._trim(START_QUEUED)  # fed while the connection was being set up
        wait = self._start + self._sent * AUDIO_PTIME - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        while len(self._pending) < AUDIO_FRAME and self.buffer:
            piece = self.buffer.popleft()
            self.queued -= len(piece)
            self._pending = np.concatenate([self._pending, piece])
        chunk = self._pending[:AUDIO_FRAME]
        self._pending = self._pending[AUDIO_FRAME:]
        chunk = np.concatenate([chunk, np.zeros(AUDIO_FRAME - len(chunk), np.float32)])
        pcm = p.pcm16(chunk)
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = audio.SAMPLE_RATE
        frame.pts = self._sent * AUDIO_FRAME
        frame.time_base = fractions.Fraction(1, audio.SAMPLE_RATE)
        self._sent += 1
        return frame


class Peer:
    """One WebRTC session: the peer connection, its live session and the tasks between them."""

    def __init__(self, state: AppState, pc: RTCPeerConnection, live: LiveSession, audit: SessionRecord,
                 record: bool, grant: Grant, motion_events: bool = False,
                 viseme_events: bool = False) -> None:  # fmt: skip
        self.id = audit.id
        self.state, self.pc, self.live = state, pc, live
        self.grant = grant  # the session's hold on its API key
        self.control = Control(state, live, audit, self._emit, record=record, motion_events=motion_events,
                               viseme_events=viseme_events)  # fmt: skip
        self.face = FaceTrack(live.session.fps)
        self.speech = SpeechTrack()
        self.channel = None
        self.tasks: set[asyncio.Task] = set()
        self.closed = False

    def spawn(self, work) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def pump(self) -> None:
        try:
            await self._stream()
        except Exception as err:  # the stream cannot go on: the session ends, saying so, instead of freezing
            log.error("session %s failed while streaming", self.id, exc_info=err)
            code, message = failure(err)
            self.error(code, message, fatal=True)
            await self.close(f"error: {code}")

    async def _stream(self) -> None:
        loop = asyncio.get_running_loop()
        async for frame in self.live.frames():
            self.speech.feed(frame.audio)
            if self.face.queue.full():
                self.face.queue.get_nowait()  # the encoder fell behind: show the newest frame
            self.face.queue.put_nowait((frame.index, frame.image))
            self.state.metrics.frames.labels("webrtc").inc()
            for event in self.control.events(frame):
                if event["type"] == "stats":
                    event["audio_queued_ms"] = self.speech.queued * 1000 // audio.SAMPLE_RATE
                    event["audio_dropped_ms"] = self.speech.dropped * 1000 // audio.SAMPLE_RATE
                self.send_event(event)
            if self.control.recording is not None:
                await loop.run_in_executor(self.state.executor, self.control.record, frame)
            else:
                self.control.record(frame)  # only counted
            if not self.grant.spend(1 / self.live.session.fps):  # the key's minutes for today are used up
                self.error("quota_exceeded", self.grant.quota_message(), fatal=True)
                await self.close("error: quota_exceeded")
                return

    async def microphone(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            channels = len(frame.layout.channels)
            pcm = frame.to_ndarray().reshape(-1)  # packed s16: interleaved channels
            with contextlib.suppress(SonicError):  # a bad frame is dropped; the stream goes on
                await self.live.push_audio(pcm, frame.sample_rate, channels)

    async def on_message(self, text: str) -> None:
        try:
            message = p.parse_control(text)
            if isinstance(message, p.Start):
                raise p.ProtocolError("already_started", "a WebRTC session starts with its offer")
            if isinstance(message, p.Stop):
                await self.close(STOPPED)
            else:
                await self.control.apply(message)
        except GeneratorLost:
            pass  # the stream's pump meets it at its next frame and ends the session, saying so
        except (p.ProtocolError, SonicError) as err:
            self.error(err.code, str(err))

    def error(self, code: str, message: str, fatal: bool = False) -> None:
        """Count an error and tell the client (the session goes on unless ``fatal``)."""
        self.state.metrics.errors.labels(code).inc()
        self.send_event(p.error_event(code, message, fatal))

    def send_event(self, event: dict) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(json.dumps(event))

    async def _emit(self, event: dict) -> None:
        self.send_event(event)

    async def close(self, reason: str = DISCONNECTED) -> None:
        """End the session (``reason``: how, for its audit record)."""
        if self.closed:
            return
        self.closed = True
        for task in list(self.tasks):
            if task is not asyncio.current_task():
                task.cancel()
        self.face.stop()
        self.speech.stop()
        await self.control.close(reason)
        self.send_event({"type": "stopped", "frames": self.control.frames})
        await self.pc.close()
        self.state.release(self.grant)
        self.state.metrics.sessions_active.labels("webrtc").dec()


@router.post(
    "/v1/webrtc/offer", summary="WebRTC signalling: the browser's offer in, the server's answer out", responses=BUSY
)
async def offer(body: Offer, request: Request, principal: Requester) -> dict:
    state: AppState = request.app.state.sonic
    place = state.gates.pending.take(client_address(request.scope))  # too_many_connections: 503, or 429
    try:
        return await _answer(state, body, request, principal, place)
    except BaseException:
        place.release()
        raise


async def _expect_connection(peer: Peer, connected: asyncio.Event, seconds: float) -> None:
    """End the session of an offer whose peer has not connected ``seconds`` after the answer."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await connected.wait()
        return
    peer.state.gates.count("connect_timeout")
    await peer.close("error: connect_timeout")
    peer.state.peers.pop(peer.id, None)


async def _answer(state: AppState, body: Offer, request: Request, principal: Principal, place: Place) -> dict:
    """The answer to ``body``, the session started; ``place`` (a pending offer's) is given back
    once its peer connects or closes."""
    motion_params, video_params = split_params(body.params.model_dump())
    loop = asyncio.get_running_loop()
    portrait = await loop.run_in_executor(state.executor, state.portraits.lookup, body.portrait)
    grant = state.admit(principal)
    audit = None
    try:
        audit = await state.audit.start_session(request, principal.name, "webrtc", uuid.uuid4().hex, portrait,
                                                motion_params, video_params, body.record, body.label)  # fmt: skip
        session = await loop.run_in_executor(state.executor, state.new_session, portrait.identity, motion_params,
                                             video_params, Marks(audit.watermark, body.label))  # fmt: skip
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        peer = Peer(state, pc, LiveSession(session, state.executor), audit, body.record, grant,
                    body.motion_events, body.viseme_events)  # fmt: skip
    except BaseException as err:
        state.release(grant)
        if audit is not None:
            await audit.end(end_reason(err))
        raise
    state.metrics.sessions.labels("webrtc").inc()
    state.metrics.sessions_active.labels("webrtc").inc()
    state.peers[peer.id] = peer
    connected = asyncio.Event()

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            peer.spawn(peer.microphone(track))

    @pc.on("datachannel")
    def on_datachannel(channel) -> None:
        peer.channel = channel
        channel.on("message", lambda text: peer.spawn(peer.on_message(text)))
        peer.send_event(peer.control.ready(portrait=body.portrait, input_latency_ms=RECEIVE_BUFFER_MS))

    @pc.on("connectionstatechange")
    async def on_state() -> None:
        if pc.connectionState == "connected":
            place.release()
            connected.set()
        if pc.connectionState in ("failed", "closed"):
            place.release()
            await peer.close()
            state.peers.pop(peer.id, None)

    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body.sdp, type=body.type))
        pc.addTrack(peer.face)
        pc.addTrack(peer.speech)
        await pc.setLocalDescription(await pc.createAnswer())
    except (ValueError, RuntimeError, InternalError, InvalidAccessError, InvalidStateError, OperationError) as err:
        await peer.close("error: bad_offer")
        state.peers.pop(peer.id, None)
        place.release()
        return error_response(400, "bad_offer", f"the SDP offer cannot be answered: {err}")
    peer.spawn(peer.pump())
    peer.spawn(_expect_connection(peer, connected, state.gates.limits.connect_timeout_s))
    return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type, "session": peer.id}
