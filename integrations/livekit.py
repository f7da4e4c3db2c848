"""sonic-rt as the avatar of a LiveKit agent: a ``VideoGenerator`` for ``AvatarRunner``, in-process.

    avatar = SonicRTAvatarSession(portrait="sample:astronaut")
    await avatar.start(session, room=ctx.room)        # before session.start(...)

``SonicRTVideoGenerator`` is the ``livekit.agents.voice.avatar.VideoGenerator`` (as bitHuman's
local one): ``push_audio`` takes the agent's audio (any rate; 16 kHz as the audio output below
asks for it) and ``AudioSegmentEnd`` (the end of a turn: a ``flush``), ``clear_buffer`` is
barge-in, and iterating it yields a video frame every 1/fps — idle from the start and between
turns — each followed, while the face speaks, by the audio that plays with it, and after a
turn's last frame (its audio cut where the turn's audio ends) an ``AudioSegmentEnd``. So
``AvatarRunner`` reports playback started at the first frame of a turn and finished at its end,
with the turn's length as the position. An interrupt closes a generation gate at once: no frame
made before it is yielded any more, and none of its audio (checked again between a frame and its
audio, where the runner resets its position: a stale chunk there would report a spurious
playback start). The session runs in this process or on a ``sonic-rt serve``
(``integrations.backend``).

``SonicRTAudioOutput`` is the agent's side (a ``QueueAudioOutput`` at 16 kHz that waits for the
avatar to start playing): it sees to it that ``wait_for_playout`` always returns. After
``clear_buffer`` the segments the runner does not report within ``CLEAR_TIMEOUT_S`` (it reports
none when it had taken no audio yet) are reported interrupted, at the position the avatar had
reached; after ``flush``, a segment still unreported ``PLAYOUT_GRACE_S`` after it should have
played out (the avatar stopped) is reported finished.

``SonicRTAvatarSession`` (an ``AvatarSession``) wires the three into an ``AgentSession`` and a
room, publishes the tracks as the agent's own participant, reports the avatar's
``AvatarMetrics`` (its playback latency) through the session's ``metrics_collected``, and ends
everything in ``aclose`` (registered with the job, when there is one).

Timings: a chunk whose ``rtc.AudioFrame.userdata["sonic_rt.timings"]`` holds phoneme or viseme
timings (as the protocol's ``timings`` message) drives the mouth with them. livekit-agents'
``AudioEmitter`` re-chunks a TTS's audio and keeps only its own word timings, so a TTS plugin's
frames arrive without them; frames an agent's ``tts_node`` yields itself keep theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import numpy as np
from livekit import rtc
from livekit.agents.voice.avatar import (
    AudioSegmentEnd,
    AvatarOptions,
    AvatarRunner,
    AvatarSession,
    QueueAudioOutput,
    VideoGenerator,
)

from sonic_rt.audio import SAMPLE_RATE

from .backend import AvatarConfig, open_backend
from .driver import TIMINGS_KEY, AvatarDriver, Timings

log = logging.getLogger(__name__)
CLEAR_TIMEOUT_S = 0.25  # after clear_buffer, the runner's own report comes within a loop turn or two
PLAYOUT_GRACE_S = 5.0  # beyond a segment's length, after which an unreported segment is reported finished


def _config(config: AvatarConfig | None, fields: dict) -> AvatarConfig:
    return config.replace(**fields) if config is not None else AvatarConfig(**{"agent": "livekit", **fields})


class SonicRTVideoGenerator(VideoGenerator):
    """The talking face of a LiveKit agent, for ``AvatarRunner``; ``start`` before iterating it."""

    def __init__(self, config: AvatarConfig | None = None, **fields) -> None:
        """``config`` or its fields as keywords (``integrations.backend.AvatarConfig``; ``agent``
        defaults to ``"livekit"``)."""
        self.config = _config(config, fields)
        self.driver = AvatarDriver(open_backend(self.config, "livekit"))
        self.interrupted_at = 0.0  # seconds of the turn cut by the last clear_buffer that had played

    @property
    def options(self) -> AvatarOptions:
        """What the runner publishes: the session's frame size and rate, 16 kHz mono audio."""
        return AvatarOptions(video_width=self.driver.size, video_height=self.driver.size,
                             video_fps=self.driver.fps, audio_sample_rate=SAMPLE_RATE, audio_channels=1)  # fmt: skip

    async def start(self) -> None:
        """Open the session (enrol the portrait here, or connect to the server)."""
        await self.driver.start()

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        if isinstance(frame, AudioSegmentEnd):
            self.driver.end_turn()
            return
        timings = Timings.read(frame.userdata.get(TIMINGS_KEY))
        pcm = np.frombuffer(frame.data, np.int16)
        self.driver.speak(pcm, frame.sample_rate, frame.num_channels, timings)

    def clear_buffer(self) -> None:
        self.interrupted_at = self.driver.interrupt() or 0.0

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        driver = self.driver
        async for frame, played in driver.frames():
            for _ in played.ended:
                yield AudioSegmentEnd()
            if not driver.current(frame):
                continue
            height, width = frame.image.shape[:2]
            yield rtc.VideoFrame(width, height, rtc.VideoBufferType.RGB24, frame.image.tobytes())
            if not driver.current(frame):
                continue  # interrupted while the runner took the frame: its audio is stale
            if played.speech is not None and len(played.speech):
                pcm = np.round(np.clip(played.speech, -1, 1) * 32767).astype(np.int16)
                yield rtc.AudioFrame(pcm.tobytes(), SAMPLE_RATE, 1, len(pcm))
            if played.finished is not None and driver.current(frame):
                yield AudioSegmentEnd()

    async def aclose(self) -> None:
        """End the session and free its place; twice is harmless."""
        await self.driver.aclose()


class SonicRTAudioOutput(QueueAudioOutput):
    """The agent's audio output to a sonic-rt avatar in the same process: 16 kHz, playback
    started when the face starts speaking, and a ``wait_for_playout`` that cannot hang."""

    def __init__(self, *, position: Callable[[], float] | None = None,
                 clear_timeout: float = CLEAR_TIMEOUT_S, playout_grace: float = PLAYOUT_GRACE_S) -> None:  # fmt: skip
        """``position()``: how far the avatar had played the turn an interrupt cut (what a
        segment the runner leaves unreported after ``clear_buffer`` is reported at)."""
        super().__init__(sample_rate=SAMPLE_RATE, wait_playback_start=True)
        self._position = position or (lambda: 0.0)
        self._clear_timeout, self._grace = clear_timeout, playout_grace
        self._segment_s = 0.0  # seconds captured in the segment being captured
        self._due = 0.0  # monotonic time by which every flushed segment should have played out
        self._tasks: set[asyncio.Task] = set()

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        if not self._capturing:
            self._segment_s = 0.0
        self._segment_s += frame.duration
        await super().capture_frame(frame)

    def flush(self) -> None:
        flushed = self._capturing
        super().flush()
        if flushed:
            self._due = max(self._due, time.monotonic()) + self._segment_s
            length = self._segment_s
            self._watch(self._due + self._grace - time.monotonic(), lambda: length, interrupted=False)

    def clear_buffer(self) -> None:
        super().clear_buffer()  # the runner hears of it, interrupts the avatar and reports what it played
        self._due = 0.0
        if self._pending_playback_count:
            self._watch(self._clear_timeout, self._position, interrupted=True)

    def _watch(self, delay: float, position: Callable[[], float], interrupted: bool) -> None:
        """In ``delay`` seconds, report the segments captured by now that are still unreported then."""
        target = self.captured_playout_segments
        task = asyncio.get_running_loop().create_task(self._settle(max(0.0, delay), target, position, interrupted))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, delay: float, target: int, position: Callable[[], float], interrupted: bool) -> None:
        await asyncio.sleep(delay)
        unreported = self._pending_playback_count - (self.captured_playout_segments - target)
        if unreported > 0 and not interrupted:
            log.warning("the avatar did not report a segment played out %.1f s after it was due", self._grace)
        for _ in range(max(0, unreported)):
            self.on_playback_finished(playback_position=position(), interrupted=interrupted)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class SonicRTAvatarSession(AvatarSession):
    """A sonic-rt avatar for an ``AgentSession``: the generator, the runner and the audio output
    in the agent's process, publishing as the agent's participant."""

    def __init__(self, config: AvatarConfig | None = None, **fields) -> None:
        super().__init__()
        self.config = _config(config, fields)
        self.generator: SonicRTVideoGenerator | None = None
        self.audio_output: SonicRTAudioOutput | None = None
        self.runner: AvatarRunner | None = None
        self._closed = False

    @property
    def avatar_identity(self) -> str:
        return self._room.local_participant.identity if self._room is not None else ""

    @property
    def provider(self) -> str:
        return "sonic-rt"

    async def start(self, agent_session, room: rtc.Room) -> None:
        """Open the avatar's session, publish its tracks in ``room`` (from its first frame) and
        make it ``agent_session``'s audio output. Call before ``agent_session.start``."""
        await super().start(agent_session, room)
        self.generator = SonicRTVideoGenerator(self.config)
        try:
            await self.generator.start()
            self.audio_output = SonicRTAudioOutput(position=lambda: self.generator.interrupted_at)
            self.runner = AvatarRunner(room, audio_recv=self.audio_output, video_gen=self.generator,
                                       options=self.generator.options)  # fmt: skip
            await self.runner.start()
        except BaseException:
            await self.aclose()
            raise
        agent_session.output.audio = self.audio_output

    async def aclose(self) -> None:
        """Stop the runner, end the avatar's session (its record, its place); twice is harmless."""
        if self._closed:
            return
        self._closed = True
        if self.runner is not None:
            await self.runner.aclose()
        if self.audio_output is not None:
            await self.audio_output.aclose()
        if self.generator is not None:
            await self.generator.aclose()
        await super().aclose()
