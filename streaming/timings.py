"""A client's phoneme/viseme timings, placed on the session's timeline of its own audio.

Timings (``sonic_rt.audio.timings``) come before or with the audio they describe. They are placed in
seconds of the client's audio (the timeline ``OutFrame.source`` and the wire's ``source_us``
count on), from where the audio received so far ends unless the message says where. As audio
arrives, ``TimingsTrack.split`` cuts it where the timings begin and stop covering it: covered
audio goes to the phonetic track with its marks (exact rows, at once), the rest is recognised.

Refused (``BadTimings``), and nothing else changes: timings for audio already received (they
would go backwards), timings that overlap ones already placed, and — at the end of an utterance
(``flush``) — timings that run past the end of its audio (they are dropped). An interrupt drops
the timings of audio not yet received with that audio.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from sonic_rt.audio import SAMPLE_RATE
from sonic_rt.audio.timings import OPEN, BadTimings, Mark, covered, relative

SLACK_S = 0.001  # timings may start this much before the audio received so far (rounding of ms)
END_SLACK_S = 0.02  # and end this much after the end of the utterance's audio (a TTS's rounding)


class TimingsTrack:
    """Marks placed on the client's audio timeline, taken as its audio comes; one per session."""

    def __init__(self) -> None:
        self._marks: deque[Mark] = deque()
        self.received = 0  # 16 kHz samples of client audio so far

    @property
    def end(self) -> float:
        """Where the timings placed so far end, in seconds (``inf`` while the last one is open)."""
        return self._marks[-1].end if self._marks else self.received / SAMPLE_RATE

    def place(self, marks: tuple[Mark, ...], offset: float | None = None) -> None:
        """Place ``marks`` (times from 0) at ``offset`` seconds of client audio, default the end of
        the audio received so far. A mark left open by earlier timings ends where these start."""
        if not marks:
            return
        now = self.received / SAMPLE_RATE
        origin = now if offset is None else offset
        first = marks[0].start + origin
        if first < now - SLACK_S:
            raise BadTimings(
                f"the timings start at {first * 1e3:.0f} ms of your audio, but {now * 1e3:.0f} ms of it has "
                "already arrived: send timings before the audio they describe"
            )
        if self._marks:
            last = self._marks[-1]
            if first < last.start + SLACK_S or (last.end != OPEN and first < last.end - SLACK_S):
                raise BadTimings(
                    f"the timings start at {first * 1e3:.0f} ms, inside timings already placed "
                    f"(up to {last.end * 1e3:.0f} ms): timings must not overlap"
                )
            if last.end == OPEN:
                self._marks[-1] = Mark(last.classes, last.start, first, last.closure)
        self._marks.extend(Mark(m.classes, m.start + origin, m.end + origin, m.closure) for m in marks)

    def split(self, samples: np.ndarray) -> list[tuple[np.ndarray, tuple[Mark, ...] | None]]:
        """The client's next ``samples`` (16 kHz), cut where timings start or stop covering them:
        ``(piece, marks)``, marks with times from the piece's first sample, ``None`` to recognise."""
        start = self.received
        self.received += len(samples)
        self._forget(start / SAMPLE_RATE)
        if not self._marks:
            return [(samples, None)] if len(samples) else []
        out = []
        for lo, hi, inside in covered(self._marks, start / SAMPLE_RATE, self.received / SAMPLE_RATE):
            a = round(lo * SAMPLE_RATE) - start
            b = round(hi * SAMPLE_RATE) - start
            if b > a:
                out.append((samples[a:b], relative(self._marks, lo, hi) if inside else None))
        return out

    def end_utterance(self) -> None:
        """The utterance ends with the audio received: an open mark ends there; marks beyond are
        dropped and refused."""
        now = self.received / SAMPLE_RATE
        if self._marks and self._marks[-1].end == OPEN:
            last = self._marks.pop()
            if last.start < now:
                self._marks.append(Mark(last.classes, last.start, now, last.closure))
        beyond = [m for m in self._marks if m.end > now + END_SLACK_S]
        if beyond:
            self._marks = deque(m for m in self._marks if m.end <= now + END_SLACK_S)
            raise BadTimings(
                f"timings run to {beyond[-1].end * 1e3:.0f} ms, past the end of the utterance's audio "
                f"({now * 1e3:.0f} ms): {len(beyond)} marks were dropped"
            )

    def clear(self) -> None:
        """An interrupt: timings of audio not yet received go with it."""
        self._marks.clear()

    def _forget(self, before: float) -> None:
        while self._marks and self._marks[0].end <= before:
            self._marks.popleft()
