"""A ``Session`` driven in real time: its work off the event loop, its frames paced by a media clock.

``LiveSession.frames()`` is the visible loop of a live stream: wake a little before frame
``n`` is due, have the session render it (from the audio that arrived, or from silence filled in
if none did), wait for the instant, hand it over. Between frames a worker turns newly arrived
audio into motion as soon as it comes, so frames are ready before they are due. All calls into
the session go through one lock onto a thread pool: the session is never touched by two threads,
and the event loop never waits on computation. When the machine falls behind by more than
``MAX_LATE_S`` the clock is moved on instead of rushing frames out: the stream stays smooth,
and the session is told (``fell_behind``), so that the latency it gained is won back in the
next pauses (``Session`` skips silence) however long the stall was.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import TypeVar

import numpy as np

from sonic_rt import audio

from .clock import MediaClock
from .session import OutFrame, Session

RENDER_LEAD_S = 0.015  # render this long before a frame is due
MAX_LATE_S = 0.25  # further behind than this, the clock moves on
SAY_PIECE = audio.SAMPLE_RATE // 5  # synthesised speech goes into the session 200 ms at a time

T = TypeVar("T")


class LiveSession:
    """Real-time driver of one ``Session``; one task iterates ``frames()``, any may push."""

    def __init__(self, session: Session, executor: Executor, clock: MediaClock | None = None) -> None:
        self.session = session
        self.clock = clock or MediaClock(session.fps)
        self._executor = executor
        self._lock = asyncio.Lock()
        self._work = asyncio.Event()
        self.stalls = 0  # times the clock moved on because frames were late
        self.stalled_s = 0.0

    async def push_audio(self, pcm: np.ndarray, sample_rate: int = audio.SAMPLE_RATE, channels: int = 1,
                         client: bool = True, script=None) -> None:  # fmt: skip
        if self.session.generates_ahead:  # held in another process: a push only checks the chunk and
            async with self._lock:  # sends it on (microseconds), not worth a trip to the thread pool
                self.session.push_audio(pcm, sample_rate, channels, client, script)
            return
        await self._call(self.session.push_audio, pcm, sample_rate, channels, client, script)
        self._work.set()

    async def place_timings(self, marks, offset: float | None = None) -> None:
        """The client's phoneme timings for its audio to come (``Session.place_timings``: cheap, so
        done on the loop, under the lock)."""
        async with self._lock:
            self.session.place_timings(marks, offset)

    async def flush(self) -> None:
        try:
            await self._call(self.session.flush)  # BadTimings after the flush, for timings past its end
        finally:
            self._work.set()

    async def interrupt(self) -> int:
        """Barge-in; returns the index of the first frame made after it."""
        async with self._lock:  # cheap (it only clears queues), but off the loop: the session may be remote
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self.session.interrupt)
            return self.session.frames_out

    async def set_scales(self, dynamic_scale: float | None = None, motion_scale: float | None = None) -> int:
        """Change the motion amplitudes mid-stream (``ValueError`` out of range); returns the first
        frame they apply to (the few frames already generated ahead keep the old ones)."""
        return await self._call(self.session.animator.set_scales, dynamic_scale, motion_scale)  # no model call

    async def say(self, text: str, voice: str = "en-us") -> float:
        """Speak ``text`` with the embedded TTS into the session; returns its length in seconds.
        Its phonemes go with the audio: the mouth follows what espeak-ng says it speaks."""
        from sonic_rt.audio import tts
        from sonic_rt.audio.phonetic import script_slice

        loop = asyncio.get_running_loop()
        speech = await loop.run_in_executor(self._executor, lambda: tts.synthesize(text, voice))
        for start in range(0, len(speech.audio), SAY_PIECE):
            piece = speech.audio[start : start + SAY_PIECE]
            t0 = start / audio.SAMPLE_RATE
            script = script_slice(speech.phonemes, t0, t0 + len(piece) / audio.SAMPLE_RATE)
            await self.push_audio(piece, client=False, script=script)
        await self.flush()
        return speech.duration

    async def frames(self) -> AsyncIterator[OutFrame]:
        """The paced stream: frame ``n`` at ``clock.due(n)``, for as long as it is iterated."""
        # a session generated in another process generates ahead there by itself: nothing to drive
        worker = None if self.session.generates_ahead else asyncio.create_task(self._generate())
        self.clock.begin()
        n = 0
        try:
            while True:
                await self.clock.sleep_until(self.clock.due(n) - RENDER_LEAD_S)
                frame = await self._call(self.session.next_frame)
                late = self.clock.now() - self.clock.due(n)
                if late > MAX_LATE_S:
                    self.clock.start += late
                    self.stalls += 1
                    self.stalled_s += late
                    await self._call(self.session.fell_behind, late)  # to be won back in its next pauses
                await self.clock.sleep_until(self.clock.due(n))
                yield frame
                n += 1
                self._work.set()
        finally:
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker

    async def _generate(self) -> None:
        while True:
            await self._work.wait()
            self._work.clear()
            while await self._call(self.session.generate):
                pass

    async def _call(self, fn: Callable[..., T], *args) -> T:
        """``fn(*args)`` on the thread pool, the session locked until it has returned. A caller
        cancelled meanwhile stops waiting, but the call runs on in its thread: the lock is released
        when the call ends, not when its caller gives up, so no second call overlaps it."""
        loop = asyncio.get_running_loop()
        await self._lock.acquire()
        try:
            job = loop.run_in_executor(self._executor, fn, *args)
        except BaseException:
            self._lock.release()
            raise
        job.add_done_callback(self._ended)
        return await asyncio.shield(job)

    def _ended(self, job: asyncio.Future) -> None:
        self._lock.release()
        if not job.cancelled():
            job.exception()  # retrieved: an error of a call whose caller left is not logged as unseen
