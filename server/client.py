"""A Python client for the WebSocket protocol (``server.protocol``), built on ``websockets``.

    async with StreamClient("ws://127.0.0.1:8000/v1/stream", api_key=KEY) as client:
        ready = await client.start(portrait="sample:astronaut", audio={"sample_rate": 48000})
        sender = asyncio.create_task(client.stream_audio(pcm48k, 48000))  # real-time pace
        async for item in client:           # Media (audio/video) or an event dict
            ...

It records when each audio chunk went out (``sent_chunks``), so a program can measure the
latency from a chunk to the frame that shows it (``Media.source`` says which second of its audio
a frame shows). ``VideoDecoder`` turns video payloads back into RGB arrays.

``api_key`` goes in the handshake's ``Authorization: Bearer`` header; ``auth_headers(api_key)``
gives the same header for REST calls (``client.headers``), e.g. to download a recording.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import json
import time
from collections.abc import AsyncIterator

import numpy as np
import websockets

from . import protocol as p


@dataclasses.dataclass(frozen=True)
class SentChunk:
    start: float  # seconds into the client's audio
    end: float
    at: float  # wall clock when sent


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The header that presents ``api_key`` to the server (none without a key)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class StreamClient:
    def __init__(self, url: str, max_size: int = 8 * 2**20, api_key: str | None = None, ssl=None) -> None:
        """``url``: ``ws://`` or ``wss://``; ``ssl``: an ``ssl.SSLContext`` for ``wss://`` with a
        certificate the system does not trust (a self-signed one)."""
        self.url = url
        self.headers = auth_headers(api_key)
        self._ssl = ssl
        self._max_size = max_size
        self.ws = None
        self.ready: dict | None = None
        self.audio_format = p.AudioFormat()
        self.sent_chunks: list[SentChunk] = []
        self._starts: list[float] = []
        self._sent_samples = 0

    async def __aenter__(self) -> StreamClient:
        extra = {"ssl": self._ssl} if self._ssl is not None else {}
        self.ws = await websockets.connect(self.url, max_size=self._max_size, compression=None,
                                           additional_headers=self.headers, **extra)  # fmt: skip
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.ws.close()

    async def start(self, **fields) -> dict:
        """Send ``start`` (fields as in ``server.protocol.Start``) and wait for ``ready``; raises
        ``StreamError`` if the server answers with an error instead."""
        message = p.Start(type="start", **fields)
        self.audio_format = message.audio
        await self.send_json(message.model_dump())
        async for item in self:
            if isinstance(item, dict) and item["type"] == "ready":
                self.ready = item
                return item
            if isinstance(item, dict) and item["type"] == "error":
                raise StreamError(item["code"], item["message"])
        raise StreamError("closed", "the server closed the connection before the session was ready")

    async def send_json(self, message: dict) -> None:
        await self.ws.send(json.dumps(message))

    async def send_audio(self, pcm: np.ndarray) -> None:
        """One chunk in the declared format (``(n,)`` or ``(n, channels)``; float input is converted)."""
        fmt = self.audio_format
        pcm = np.asarray(pcm)
        if fmt.format == "s16le" and pcm.dtype != np.int16:
            pcm = p.pcm16(pcm)
        elif fmt.format == "f32le":
            pcm = pcm.astype(np.float32) / (32768 if pcm.dtype == np.int16 else 1)
        frames = len(pcm) if pcm.ndim == 2 else len(pcm) // fmt.channels
        start = self._sent_samples / fmt.sample_rate
        self._sent_samples += frames
        await self.ws.send(pcm.astype(pcm.dtype.newbyteorder("<")).tobytes())
        self.sent_chunks.append(SentChunk(start, self._sent_samples / fmt.sample_rate, time.time()))
        self._starts.append(start)

    async def stream_audio(self, pcm: np.ndarray, chunk_ms: int = 20, realtime: bool = True) -> None:
        """Send ``pcm`` in ``chunk_ms`` chunks; at real-time pace (each chunk when its last sample
        would have been spoken), or as fast as the socket takes them."""
        step = self.audio_format.sample_rate * chunk_ms // 1000
        t0 = time.monotonic()
        for i, start in enumerate(range(0, len(pcm), step)):
            if realtime:
                delay = t0 + (i + 1) * chunk_ms / 1000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self.send_audio(pcm[start : start + step])

    async def say(self, text: str, voice: str = "en-us") -> None:
        await self.send_json({"type": "say", "text": text, "voice": voice})

    async def flush(self) -> None:
        await self.send_json({"type": "flush"})

    async def send_timings(self, fmt: str, marks: list[dict], offset_ms: float | None = None,
                           end_ms: float | None = None) -> None:  # fmt: skip
        """The phonemes or visemes of the audio to come (``sonic_rt.audio.timings``), sent before it."""
        message = {"type": "timings", "format": fmt, "marks": marks, "offset_ms": offset_ms, "end_ms": end_ms}
        await self.send_json(message)

    async def interrupt(self) -> None:
        await self.send_json({"type": "interrupt"})

    async def set_params(self, **params: float) -> None:
        """Change ``dynamic_scale``/``motion_scale`` mid-session (answered by a ``params`` event)."""
        await self.send_json({"type": "params", "params": params})

    async def stop(self) -> None:
        await self.send_json({"type": "stop"})

    def __aiter__(self) -> AsyncIterator[p.Media | dict]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[p.Media | dict]:
        try:
            async for raw in self.ws:
                at = time.time()
                if isinstance(raw, bytes):
                    yield dataclasses.replace(p.unpack_media(raw), received=at)
                else:
                    event = json.loads(raw)
                    event["received"] = at
                    yield event
        except websockets.ConnectionClosed:
            return

    def sent_at(self, source: float) -> float | None:
        """When the chunk holding ``source`` seconds of our audio was sent (None if not sent)."""
        i = bisect.bisect_right(self._starts, source) - 1
        if i < 0 or source >= self.sent_chunks[i].end:
            return None
        return self.sent_chunks[i].at


class StreamError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code


class VideoDecoder:
    """Video payloads -> ``(H, W, 3)`` uint8 RGB (JPEG: each on its own; H.264: in order)."""

    def __init__(self) -> None:
        self._h264 = None

    def decode(self, media: p.Media) -> list[np.ndarray]:
        if media.codec == p.VIDEO_CODECS["jpeg"]:
            import cv2

            bgr = cv2.imdecode(np.frombuffer(media.payload, np.uint8), cv2.IMREAD_COLOR)
            return [cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)]
        import av

        if self._h264 is None:
            self._h264 = av.CodecContext.create("h264", "r")
        out = []
        for packet in self._h264.parse(media.payload):
            out += [f.to_ndarray(format="rgb24") for f in self._h264.decode(packet)]
        return out
