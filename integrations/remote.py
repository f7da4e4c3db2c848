"""An avatar's session on a ``sonic-rt serve``, over the WebSocket protocol (``server.client``).

The agent's speech goes out as 16 kHz s16le (so the server's timeline counts exactly the samples
sent), its timings as ``timings`` messages, turns end with ``flush``, barge-in is ``interrupt``.
The server paces the frames; one reader task takes them off the socket, pairs each JPEG with the
audio sent just before it (same index), decodes it off the event loop and queues the frame
(bounded: a consumer that falls behind loses the oldest). The ``interrupted`` event answers
each ``interrupt`` with the first frame made after it; they come in order, so each waiting
interrupt takes the next one. A fatal error or a closed connection ends ``frames`` with
``RemoteError``. ``aclose`` sends ``stop`` and closes the socket, which frees the session's
place on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator

import numpy as np

from server import protocol as p
from server.client import StreamClient, StreamError, VideoDecoder
from sonic_rt.audio import SAMPLE_RATE

from .backend import AvatarConfig, AvatarFrame

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 30.0  # to connect and have the session ready (a cold server enrols the portrait)
ACK_TIMEOUT_S = 2.0  # for the server to answer an interrupt; after it, frames are let through again
CLOSE_TIMEOUT_S = 2.0
QUEUE_FRAMES = 25  # frames decoded and not yet taken (1 s)


class RemoteError(Exception):
    """The server ended the session (a fatal error, or the connection closed)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code


class RemoteBackend:
    """``Backend`` on a session of a ``sonic-rt serve``."""

    def __init__(self, config: AvatarConfig) -> None:
        self.config = config
        self.client = StreamClient(config.url, api_key=config.api_key)
        self.fps = self.size = self.watermark = 0
        self.session_id: str | None = None
        self._frames: asyncio.Queue[AvatarFrame | RemoteError] = asyncio.Queue(QUEUE_FRAMES)
        self._acks: deque[asyncio.Future[int]] = deque()
        self._reader: asyncio.Task | None = None
        self._last_index = -1
        self.dropped = 0  # frames the consumer did not take in time
        self._closed = False

    async def start(self) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await self.client.__aenter__()
                ready = await self.client.start(
                    portrait=self.config.portrait, params=self.config.params, label=self.config.label,
                    audio={"format": "s16le", "sample_rate": SAMPLE_RATE, "channels": 1},
                    video={"codec": "jpeg", "quality": self.config.jpeg_quality},
                )  # fmt: skip
        except StreamError as err:
            await self.aclose()
            raise RemoteError(err.code, str(err)) from None
        except BaseException:
            await self.aclose()
            raise
        self.fps, self.size = ready["fps"], ready["width"]
        self.watermark, self.session_id = int(ready["watermark"], 16), ready["session"]
        self._reader = asyncio.create_task(self._read())

    async def push(self, samples: np.ndarray) -> None:
        await self.client.send_audio(p.pcm16(samples))

    async def place_timings(self, fmt: str, marks: list[dict], end_ms: float | None, offset: float) -> None:
        await self.client.send_timings(fmt, marks, offset_ms=offset * 1000, end_ms=end_ms)

    async def flush(self) -> None:
        await self.client.flush()

    async def interrupt(self) -> int:
        ack = asyncio.get_running_loop().create_future()
        self._acks.append(ack)  # left in place if it times out: a late answer still goes to its own interrupt
        await self.client.interrupt()
        try:
            return await asyncio.wait_for(asyncio.shield(ack), ACK_TIMEOUT_S)
        except TimeoutError:
            log.warning("the server did not answer an interrupt within %.1f s; letting frames through", ACK_TIMEOUT_S)
            return self._last_index + 1

    async def frames(self) -> AsyncIterator[AvatarFrame]:
        while True:
            item = await self._frames.get()
            if isinstance(item, RemoteError):
                raise item
            yield item

    async def _read(self) -> None:
        """Frames off the socket into the queue, events to where they belong; the end as a ``RemoteError``."""
        decoder, audio = VideoDecoder(), {}
        loop = asyncio.get_running_loop()
        end = RemoteError("closed", "the server closed the connection")
        try:
            async for item in self.client:
                if isinstance(item, dict):
                    failure = self._event(item)
                    if failure is not None:
                        end = failure
                        break
                elif item.kind == p.KIND_AUDIO:
                    audio[item.index] = np.frombuffer(item.payload, "<i2").astype(np.float32) / 32768
                elif item.kind == p.KIND_VIDEO:
                    image = (await loop.run_in_executor(None, decoder.decode, item))[0]
                    pcm = audio.pop(item.index, None)
                    pcm = np.zeros(SAMPLE_RATE // self.fps, np.float32) if pcm is None else pcm
                    self._last_index = item.index
                    self._put(AvatarFrame(item.index, item.pts, image, pcm, item.source, item.speech))
        finally:
            self._put(end)

    def _event(self, event: dict) -> RemoteError | None:
        kind = event["type"]
        if kind == "interrupted":
            if self._acks:
                self._acks.popleft().set_result(event["frame"])
        elif kind == "error" and event.get("fatal"):
            return RemoteError(event["code"], event["message"])
        elif kind == "error":
            log.warning("sonic-rt server: [%s] %s", event["code"], event["message"])
        elif kind == "stopped":
            return RemoteError("stopped", "the session was stopped")
        return None

    def _put(self, item: AvatarFrame | RemoteError) -> None:
        if self._frames.full():
            self._frames.get_nowait()
            self.dropped += 1
        self._frames.put_nowait(item)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.client.ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self.client.stop()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self.client.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
