"""sonic-rt as a pipecat avatar service: the TTS's speech in, the talking face and its voice out.

    pipeline = Pipeline([..., tts, SonicRTVideoService(portrait="sample:astronaut"), transport.output()])

``SonicRTVideoService`` is an ``AIService`` placed after the TTS. It takes the TTS's
``TTSAudioRawFrame``s (any rate; their ``metadata["sonic_rt.timings"]``, when the TTS knows its
phonemes, drives the mouth) and swallows them, with the ``TTSStartedFrame``/``TTSStoppedFrame``
around them; out come ``OutputImageRawFrame``s (RGB, the session's frame rate, from the first
second and between turns: the face idles; ``metadata["sonic_rt.frame"]`` is the frame's index)
and the speech that plays with each frame as ``TTSAudioRawFrame`` (16 kHz; transports resample;
``metadata["sonic_rt.source"]``: the second of the TTS's audio it starts at)
— only while the face speaks, never as silence, since every ``TTSAudioRawFrame`` marks the bot
as speaking. The TTS's started and
stopped frames are passed on in step with the face: ``TTSStartedFrame`` before a turn's first
frame, ``TTSStoppedFrame`` after its last, whose speech ends where the turn's audio ends.

An ``InterruptionFrame`` interrupts the session at once: queued speech is dropped, no frame made
before it is pushed any more (a generation counter, ``integrations.gate``: the interruption
cancels this processor's task but not the one pushing frames), and the face goes back to rest
in the frames that follow. The time from a turn's first audio to its first frame is reported as
the service's TTFB metric (``PipelineParams(enable_metrics=True)``). The session runs in this
process or on a ``sonic-rt serve`` (``url``, ``api_key``): ``integrations.backend``. It opens
in ``start`` (in the background: the pipeline does not wait for the portrait to be enrolled) and
closes in ``stop``, ``cancel`` or ``cleanup``, whichever comes first; ``stop`` (an ``EndFrame``,
pipecat's graceful end) lets the speech already handed over play out first, as transports do.

Transports: give the output ``video_out_is_live=True`` and ``video_out_framerate`` the
session's rate (25); do not set ``sync_with_audio`` (with live video, pipecat then drops every
image).
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.ai_service import AIService
from pipecat.services.settings import ServiceSettings

from sonic_rt.audio import SAMPLE_RATE

from .backend import AvatarConfig, AvatarFrame
from .driver import SOURCE_KEY, TIMINGS_KEY, AvatarDriver, Timings
from .factory import open_backend
from .turns import Played, TurnEnd

FRAME_KEY = "sonic_rt.frame"  # an image's index on the session's timeline (shown at index / fps), in its metadata


class SonicRTVideoService(AIService):
    """A pipecat avatar service animating a portrait with sonic-rt."""

    def __init__(self, *, config: AvatarConfig | None = None, **kwargs) -> None:
        """``config``: the avatar (``integrations.backend.AvatarConfig``), or its fields as keywords:
        ``portrait``, ``params``, ``label``, ``consent``, ``geometry``, ``agent`` (default
        ``"pipecat"``), ``audit_db``, ``url``, ``api_key``, ``jpeg_quality``. The rest go to
        ``AIService``."""
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k in AvatarConfig.__dataclass_fields__}
        kwargs.setdefault("settings", ServiceSettings(model=None))  # no model to name: a portrait is animated
        super().__init__(**kwargs)
        self.config = config.replace(**fields) if config is not None else AvatarConfig(**{"agent": "pipecat", **fields})
        self.driver: AvatarDriver | None = None
        self._task = None
        self._starts: deque[TTSStartedFrame | None] = deque()  # each turn's started frame, until its first frame
        self._stops: deque[TTSStoppedFrame | None] = deque()  # and its stopped frame, until its last
        self._handed: deque[float] = deque()  # when each turn's first audio came (its TTFB starts there)
        self._turn_audio = False  # the TTS turn under way has handed over audio
        self._closed = False

    def can_generate_metrics(self) -> bool:
        return True

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        if self.driver is None and not self._closed:
            self.driver = AvatarDriver(open_backend(self.config, "pipecat"))
            self._task = self.create_task(self._run(), name="sonic-rt avatar")

    async def stop(self, frame: EndFrame) -> None:
        """A graceful end: the speech already handed over plays out first (``EndFrame`` goes on after it)."""
        await super().stop(frame)
        if self.driver is not None and self._task is not None and not self._task.done():
            await self.driver.drain(alive=lambda: not self._task.done())
        await self._close()

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        await self._close()

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._close()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and self.driver is not None:
            if isinstance(frame, TTSAudioRawFrame):
                return self._speak(frame)
            if isinstance(frame, TTSStartedFrame):
                self._turn_audio = False
                self._starts.append(frame)
                return None
            if isinstance(frame, TTSStoppedFrame):
                return await self._end_turn(frame)
            if isinstance(frame, InterruptionFrame):
                self._interrupt()
        await self.push_frame(frame, direction)

    # -- in ------------------------------------------------------------------------------------

    def _speak(self, frame: TTSAudioRawFrame) -> None:
        timings = Timings.read(frame.metadata.get(TIMINGS_KEY))
        pcm = np.frombuffer(frame.audio, np.int16)
        if not self._turn_audio:  # the first audio of a turn: its latency counts from here
            self._turn_audio = True
            self._handed.append(time.time())
            if len(self._starts) < len(self._handed):
                self._starts.append(None)  # a TTS that sent no TTSStartedFrame
        self.driver.speak(pcm, frame.sample_rate, frame.num_channels, timings)

    async def _end_turn(self, frame: TTSStoppedFrame) -> None:
        if not self._turn_audio:  # nothing was said: the turn's frames go on as they came
            if self._starts:
                await self.push_frame(self._starts.pop())
            return await self.push_frame(frame)
        self._turn_audio = False
        self._stops.append(frame)
        self.driver.end_turn()
        return None

    def _interrupt(self) -> None:
        self.driver.interrupt()
        self._starts.clear()
        self._stops.clear()
        self._handed.clear()
        self._turn_audio = False

    # -- out -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self.driver.start()
            async for frame, played in self.driver.frames():
                await self._emit(frame, played)
        except Exception as err:
            await self.push_error(error_msg=f"sonic-rt avatar: {err}", exception=err, fatal=True)

    async def _emit(self, frame: AvatarFrame, played: Played) -> None:
        """Push ``frame`` and what it plays, each only while no interrupt came since it was made."""
        for end in played.ended:
            await self._finish(frame, end)
        if played.started and self.driver.current(frame):
            await self._started()
        if played.speech is not None and len(played.speech) and self.driver.current(frame):
            pcm = np.round(np.clip(played.speech, -1, 1) * 32767).astype(np.int16)
            speech = TTSAudioRawFrame(pcm.tobytes(), SAMPLE_RATE, 1)
            speech.metadata[SOURCE_KEY] = frame.source
            await self.push_frame(speech)
        if self.driver.current(frame):
            size = (frame.image.shape[1], frame.image.shape[0])
            image = OutputImageRawFrame(frame.image.tobytes(), size, "RGB")
            image.metadata[FRAME_KEY] = frame.index
            await self.push_frame(image)
        if played.finished is not None:
            await self._finish(frame, played.finished)

    async def _started(self) -> None:
        started = self._starts.popleft() if self._starts else None
        await self.push_frame(started or TTSStartedFrame())
        if self._handed:
            await self.start_ttfb_metrics(start_time=self._handed.popleft())
            await self.stop_ttfb_metrics()

    async def _finish(self, frame: AvatarFrame, end: TurnEnd) -> None:
        stopped = self._stops.popleft() if self._stops else None
        if not end.heard:  # a turn none of whose audio showed (all of it skipped as silence)
            started = self._starts.popleft() if self._starts else None
            if self._handed:
                self._handed.popleft()
            if started is not None:
                await self.push_frame(started)
        if self.driver.current(frame):
            await self.push_frame(stopped or TTSStoppedFrame())

    async def _close(self) -> None:
        """End the session and free its place; the first call does it."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            await self.cancel_task(self._task)
        if self.driver is not None:
            await self.driver.aclose()
