"""One avatar driven by an agent: its speech in, turn by turn; the frames to show and play out.

The framework adapters call ``speak``, ``end_turn`` and ``interrupt`` from their own tasks and
never wait on the session: each call is queued (``speak`` checks its chunk first, so bad input
fails at the call) and one feeder task carries them out in order — the agent's audio resampled
to 16 kHz mono here (so the session's timeline counts exactly what was pushed, and a turn's end
is known to the sample), timings placed just before the audio they describe, a turn's end as a
``flush``. ``interrupt`` drops what is still queued, closes the ``FrameGate`` at once (no frame
made before it goes out any more) and the session's interrupt follows; the gate opens at the
first frame the session made after it. Nothing is ever awaited in a cancellable framework task,
so a framework cancelling its own task mid-call cannot leave the session half-called.

``frames`` yields each current frame with what it plays of the agent's turns (``Played``), and
notes its latency; a failure of the session or the feeder ends it with that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from sonic_rt.audio import SAMPLE_RATE
from sonic_rt.audio.decode import ChunkResampler
from sonic_rt.audio.timings import FORMATS
from sonic_rt.errors import SonicError

from .backend import AvatarFrame, Backend
from .gate import FrameGate
from .latency import Latency
from .turns import Played, Turns

log = logging.getLogger(__name__)
TIMINGS_KEY = "sonic_rt.timings"  # where a TTS puts a chunk's phoneme/viseme timings (frame metadata)
SOURCE_KEY = "sonic_rt.source"  # where the avatar says which second of the agent's audio a chunk it plays is
JOIN_S = 1.0  # speech queued back to back goes into the session up to this much per call
DRAIN_GRACE_S = 5.0  # ``drain`` waits this long beyond the speech still to play
START_WAIT_S = 60.0  # and at most this long for the session to open (a portrait enrolled, a server connected)


@dataclass(frozen=True)
class Timings:
    """Phoneme or viseme timings of one chunk of speech, in one of ``sonic_rt.audio.timings.FORMATS``,
    times from the chunk's first sample: what the protocol's ``timings`` message carries."""

    format: str
    marks: list[dict]
    end_ms: float | None = None

    @classmethod
    def read(cls, value) -> Timings | None:
        """``value`` as a TTS leaves it in a frame's metadata: a ``Timings``, a dict with ``format``,
        ``marks`` and optionally ``end_ms``, or None. ``ValueError`` for anything else."""
        if value is None or isinstance(value, Timings):
            return value
        marks = value.get("marks") if isinstance(value, dict) else None
        if not isinstance(marks, list) or value.get("format") not in FORMATS:
            raise ValueError(f"{TIMINGS_KEY} must be a dict with a format ({', '.join(FORMATS)}) and a list of marks")
        return cls(value["format"], value["marks"], value.get("end_ms"))


@dataclass(frozen=True)
class _Speech:
    samples: np.ndarray  # 16 kHz mono float32
    timings: tuple[tuple[Timings, float], ...]  # with the second of the client timeline where each starts
    at: float  # when the agent handed it over
    epoch: int  # the interrupts before it: one since makes it stale


@dataclass(frozen=True)
class _EndTurn:
    epoch: int


@dataclass(frozen=True)
class _Interrupt:
    epoch: int


class AvatarDriver:
    """An avatar's session (``backend``) driven by one agent."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.gate = FrameGate()
        self.turns = Turns()
        self.latency = Latency()
        self._queue: asyncio.Queue[_Speech | _EndTurn | _Interrupt] = asyncio.Queue()
        self._resampler: ChunkResampler | None = None
        self._feeder: asyncio.Task | None = None
        self._queued = 0  # 16 kHz samples of agent audio pushed or queued: where the next chunk goes
        self._turn: tuple[float, float] | None = None  # the open turn: its start (timeline s), input s so far
        self._shown = 0.0  # where on the client timeline the speech played out so far ends
        self._closed = False

    @property
    def fps(self) -> int:
        return self.backend.fps

    @property
    def size(self) -> int:
        return self.backend.size

    @property
    def watermark(self) -> int:
        return self.backend.watermark

    @property
    def started(self) -> bool:
        return self._feeder is not None

    async def start(self) -> None:
        await self.backend.start()
        self._feeder = asyncio.create_task(self._feed(), name="sonic-rt avatar feeder")

    # -- the agent's side (never blocks) -------------------------------------------------------

    def speak(self, pcm: np.ndarray, sample_rate: int, channels: int = 1, timings: Timings | None = None) -> None:
        """Queue a chunk of the agent's speech: int16 or float32, ``(n,)`` interleaved or
        ``(n, channels)``, any rate from 8 to 192 kHz; ``timings`` its phonemes or visemes. Raises
        ``BadAudioChunk``/``BadSampleRate``/``BadChannelCount`` for a chunk the session cannot take."""
        resampler = self._resampler
        if resampler is None or (resampler.in_rate, resampler.channels) != (sample_rate, channels):
            if resampler is not None:
                self._queue_samples(resampler.flush(), None)  # the last format's tail
            resampler = ChunkResampler(sample_rate, channels)  # refuses a rate or layout it cannot take
        samples = resampler.push(pcm)  # refuses a dtype or shape it cannot take
        self._resampler = resampler
        self._queue_samples(samples, timings, np.size(pcm) / channels / sample_rate)

    def end_turn(self) -> None:
        """The agent's utterance ends here: its last frames come without waiting for more audio."""
        if self._resampler is not None:
            self._queue_samples(self._resampler.flush(), None)
        self._turn = None
        self._queue.put_nowait(_EndTurn(self.gate.epoch))

    def interrupt(self) -> float | None:
        """Barge-in: no frame made before now goes out any more; queued speech is dropped. Returns
        how far the turn being played had got, in seconds (None: none was playing)."""
        while not self._queue.empty():
            self._queue.get_nowait()
        position = self.turns.interrupt()
        self._resampler, self._turn = None, None
        self._queued = self.turns.position  # what the session has taken: everything else is dropped
        self._queue.put_nowait(_Interrupt(self.gate.close()))
        return position

    def _queue_samples(self, samples: np.ndarray, timings: Timings | None, seconds: float = 0.0) -> None:
        """Queue 16 kHz ``samples`` that are ``seconds`` of the agent's audio (before resampling:
        timings count on that, and the resampler holds a few samples back)."""
        if self._turn is None:
            self._turn = (self._queued / SAMPLE_RATE, 0.0)
        origin, handed = self._turn
        if len(samples) or timings is not None:
            placed = () if timings is None else ((timings, origin + handed),)
            self._queue.put_nowait(_Speech(samples, placed, time.monotonic(), self.gate.epoch))
        self._turn = (origin, handed + seconds)
        self._queued += len(samples)

    # -- the frames ---------------------------------------------------------------------------

    def current(self, frame: AvatarFrame) -> bool:
        """Whether ``frame`` may still go out (no interrupt since it was made)."""
        return self.gate.current(frame.index)

    async def frames(self) -> AsyncIterator[tuple[AvatarFrame, Played]]:
        """The session's current frames, each with what it plays of the agent's turns."""
        async for frame in self.backend.frames():
            if self._feeder is not None and self._feeder.done():
                self._feeder.result()  # the feeder's failure ends the stream with its error
            if not self.current(frame):
                continue
            played = self.turns.play(frame.source, frame.audio)
            if played.speech is not None and frame.source is not None:
                self.latency.shown(frame.source, time.monotonic())
                self._shown = frame.source + len(played.speech) / SAMPLE_RATE
            yield frame, played

    @property
    def speaking(self) -> bool:
        """Speech handed over has not all played out yet."""
        return not self._queue.empty() or self.turns.pending

    async def drain(self, grace: float = DRAIN_GRACE_S, alive=lambda: True) -> bool:
        """Wait until the speech handed over has played out (while ``frames`` is being iterated, and
        ``alive()``), at most ``START_WAIT_S`` for the session to open, then the time the speech
        takes to play plus ``grace``; returns whether it did."""
        deadline = time.monotonic() + START_WAIT_S
        while not self.started and alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        deadline = time.monotonic() + max(0.0, self._queued / SAMPLE_RATE - self._shown) + grace
        while self.speaking and time.monotonic() < deadline:
            if self._feeder is None or self._feeder.done():
                return False
            await asyncio.sleep(0.02)
        return not self.speaking

    async def aclose(self) -> None:
        """End the session (its place, its record); twice is harmless."""
        if self._closed:
            return
        self._closed = True
        if self._feeder is not None:
            self._feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._feeder
        await self.backend.aclose()

    # -- the feeder ---------------------------------------------------------------------------

    async def _feed(self) -> None:
        pending = None  # an item taken off the queue while joining speech, not yet carried out
        while True:
            item, pending = pending or await self._queue.get(), None
            if isinstance(item, _Speech):
                item, pending = self._join(item)
            if isinstance(item, _Interrupt):
                self.gate.open(item.epoch, await self.backend.interrupt())
            elif item.epoch != self.gate.epoch:
                continue  # made stale by an interrupt while it waited
            elif isinstance(item, _EndTurn):
                self.turns.end()
                await self._guard(self.backend.flush())
            else:
                await self._speech(item)

    def _join(self, first: _Speech) -> tuple[_Speech, object]:
        """``first`` and the speech queued right behind it as one push (up to ``JOIN_S``): a TTS
        hands over seconds in small chunks at once, and each call into the session waits its turn
        with the frames. Returns the joined speech and the next item taken, if any."""
        parts, timings, total = [first], list(first.timings or ()), len(first.samples)
        while not self._queue.empty() and total < JOIN_S * SAMPLE_RATE:
            item = self._queue.get_nowait()
            if not isinstance(item, _Speech) or item.epoch != first.epoch:
                return self._joined(parts, timings), item
            parts.append(item)
            timings += item.timings or ()
            total += len(item.samples)
        return self._joined(parts, timings), None

    @staticmethod
    def _joined(parts: list[_Speech], timings: list) -> _Speech:
        if len(parts) == 1:
            return parts[0]
        samples = np.concatenate([p.samples for p in parts])
        return _Speech(samples, tuple(timings), parts[0].at, parts[0].epoch)

    async def _speech(self, item: _Speech) -> None:
        for t, offset in item.timings:
            await self._guard(self.backend.place_timings(t.format, t.marks, t.end_ms, offset))
            if item.epoch != self.gate.epoch:
                return
        if len(item.samples):
            if not self.turns.open:
                self.latency.turn(self.turns.position / SAMPLE_RATE, item.at)
            self.latency.arrived(self.turns.position / SAMPLE_RATE, item.at)
            self.turns.push(len(item.samples))  # before the await: an interrupt meanwhile cuts this turn, these too
            await self._guard(self.backend.push(item.samples))

    async def _guard(self, call) -> None:
        """Carry out a call into the session; one the input is to blame for (bad timings, too much
        audio queued) is logged and skipped, as the server answers it with a non-fatal error."""
        try:
            await call
        except SonicError as err:
            log.warning("sonic-rt avatar: [%s] %s", err.code, err)
