"""sonic-rt as the avatar of a LiveKit agent: a ``VideoGenerator`` for ``AvatarRunner``, in-process.

    avatar = SonicRTAvatarSession(portrait="sample:astronaut")
    await avatar.start(session, room=ctx.room)        # before session.start(...)

``SonicRTVideoGenerator`` is the ``livekit.agents.voice.avatar.VideoGenerator`` (as bitHuman's
local one): ``push_audio`` takes the agent's audio (any rate; 16 kHz as the audio output below
asks for it) and ``AudioSegmentEnd`` (the end of a turn: a ``flush``), ``clear_buffer`` is
barge-in, and iterating it yields a video frame every 1/fps — idle from the start and between
turns — each followed, while the face speaks, by the audio that plays with it (its
``userdata["sonic_rt.source"]``: the second of the agent's audio it starts at), and after a
turn's last frame (its audio cut where the turn's audio ends) an ``AudioSegmentEnd``. So
``AvatarRunner`` reports playback started at the first frame of a turn and finished at its end,
with the turn's length as the position. An interrupt closes a generation gate at once: no frame
made before it is yielded any more, and none of its audio (checked again between a frame and its
audio, where the runner resets its position: a stale chunk there would report a spurious
playback start). The session runs in this process or on a ``sonic-rt serve``
(``integrations.backend``).

``SonicRTAudioOutput`` is the agent's side (a ``QueueAudioOutput`` at 16 kHz that waits for the
avatar to start playing). The generator, not the runner, says when a turn starts playing and how
much of it played (the runner counts a chunk it was still passing on when ``clear_buffer`` reset
its count as the start of a new turn). It sees to it that ``wait_for_playout`` always returns. After
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
from collections import deque
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

from .backend import AvatarConfig
from .driver import SOURCE_KEY, TIMINGS_KEY, AvatarDriver, Timings
from .factory import open_backend

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
        self.finished: deque[float] = deque()  # lengths of the turns whose end was yielded, not yet reported
        self.on_speaking: Callable[[], None] | None = None  # called as a turn's first audio is yielded

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
        self.finished.clear()

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        driver = self.driver
        async for frame, played in driver.frames():
            for end in played.ended:
                self.finished.append(end.position)
                yield AudioSegmentEnd()
            if not driver.current(frame):
                continue
            height, width = frame.image.shape[:2]
            yield rtc.VideoFrame(width, height, rtc.VideoBufferType.RGB24, frame.image.tobytes())
            if not driver.current(frame):
                continue  # interrupted while the runner took the frame: its audio is stale
            if played.speech is not None and len(played.speech):
                if played.started and self.on_speaking is not None:
                    self.on_speaking()
                pcm = np.round(np.clip(played.speech, -1, 1) * 32767).astype(np.int16)
                yield rtc.AudioFrame(pcm.tobytes(), SAMPLE_RATE, 1, len(pcm), userdata={SOURCE_KEY: frame.source})
            if played.finished is not None and driver.current(frame):
                self.finished.append(played.finished.position)
                yield AudioSegmentEnd()

    async def aclose(self) -> None:
        """End the session and free its place; twice is harmless."""
        await self.driver.aclose()


class SonicRTAudioOutput(QueueAudioOutput):
    """The agent's audio output to a sonic-rt avatar in the same process: 16 kHz, playback
    started when the face starts speaking, and a ``wait_for_playout`` that cannot hang."""

    def __init__(self, generator: SonicRTVideoGenerator | None = None, *, clear_timeout: float = CLEAR_TIMEOUT_S,
                 playout_grace: float = PLAYOUT_GRACE_S) -> None:  # fmt: skip
        """``generator``: the avatar this output feeds. It then says when a turn starts playing and
        how much of it played, not the runner: the runner counts from the chunks it passed on, and
        one it was passing on as ``clear_buffer`` came (its position just reset) counts as the
        start of a new turn, spuriously, and as part of the next turn's length."""
        super().__init__(sample_rate=SAMPLE_RATE, wait_playback_start=True)
        self._generator = generator
        if generator is not None:
            generator.on_speaking = lambda: self.on_playback_started(created_at=time.time())
        self._clear_timeout, self._grace = clear_timeout, playout_grace
        self._segment_s = 0.0  # seconds captured in the segment being captured
        self._due = 0.0  # monotonic time by which every flushed segment should have played out
        self._tasks: set[asyncio.Task] = set()

    def notify_playback_started(self) -> None:
        if self._generator is None:
            super().notify_playback_started()

    def notify_playback_finished(self, playback_position: float, interrupted: bool) -> None:
        if self._generator is not None:
            if interrupted:
                playback_position = self._generator.interrupted_at
            elif self._generator.finished:
                playback_position = self._generator.finished.popleft()
        super().notify_playback_finished(playback_position, interrupted)

    def _position(self) -> float:
        return self._generator.interrupted_at if self._generator is not None else 0.0

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
        if self._capturing:  # a clear ends the segment being captured, as a flush would (the agent
            super().flush()  # flushes first itself; without it the next audio joined the cleared segment)
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
            self.audio_output = SonicRTAudioOutput(self.generator)
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
        if self._room is not None:  # the avatar is the agent's own participant: the base class would remove
            self._room.off("connection_state_changed", self._on_connection_state_changed)  # it from the room
            self._room = None
        await super().aclose()
