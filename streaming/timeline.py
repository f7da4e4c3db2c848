"""The session's audio timeline: what plays with each frame, and where it came from.

Positions are 16 kHz samples on the frames' timeline (``Animator.audio_position``). Audio the
session pushes into the animator is written here too, with where it came from — seconds of the
client's own audio, or ``None`` for silence the session filled in — and whether it was speech;
each emitted frame reads back its slice. Nothing is kept before the last read, so the buffer
stays as small as the look-ahead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from sonic_rt.audio import SAMPLE_RATE


@dataclass(frozen=True)
class Span:
    """Samples ``[start, end)`` of the timeline: client audio from ``source`` seconds on (``None``:
    filled-in silence), speech or not."""

    start: int
    end: int
    source: float | None
    speech: bool

    def source_at(self, position: int) -> float | None:
        """Seconds of client audio at ``position`` inside this span (``None`` for filled-in silence)."""
        return None if self.source is None else self.source + (position - self.start) / SAMPLE_RATE


class AudioTimeline:
    """Write audio at positions, read it back by frame, forget what was read."""

    def __init__(self) -> None:
        self._base = 0  # timeline position of self._samples[0]
        self._samples = np.zeros(0, np.float32)
        self._spans: deque[Span] = deque()

    @property
    def end(self) -> int:
        """One past the last sample written."""
        return self._base + len(self._samples)

    def write(self, position: int, samples: np.ndarray, source: float | None, speech: bool) -> None:
        """Put ``samples`` at ``position``; a gap before it reads as silence."""
        if position < self._base:
            raise ValueError(f"position {position} is before the timeline's start {self._base}")
        gap = position - self.end
        if gap < 0:
            self.clear_from(position)
            gap = 0
        self._samples = np.concatenate([self._samples, np.zeros(gap, np.float32), samples.astype(np.float32)])
        if len(samples):
            self._spans.append(Span(position, position + len(samples), source, speech))

    def read(self, start: int, end: int) -> np.ndarray:
        """Samples ``[start, end)`` (zeros where nothing was written); forgets everything before ``start``."""
        self.forget(start)
        lo, hi = max(0, start - self._base), max(0, end - self._base)
        out = self._samples[lo:hi]
        return np.concatenate([out, np.zeros(end - start - len(out), np.float32)])

    def span_at(self, position: int) -> Span | None:
        """The span written at ``position`` (``None`` where nothing was)."""
        for span in self._spans:
            if span.start <= position < span.end:
                return span
        return None

    def source_at(self, position: int) -> float | None:
        """Seconds of client audio at ``position`` (``None`` for filled-in silence or a gap)."""
        span = self.span_at(position)
        return None if span is None else span.source_at(position)

    def forget(self, before: int) -> None:
        drop = min(max(0, before - self._base), len(self._samples))
        if drop:
            self._samples = self._samples[drop:]
            self._base += drop
        while self._spans and self._spans[0].end <= before:
            self._spans.popleft()

    def clear_from(self, position: int) -> None:
        """Erase everything from ``position`` on (an interrupt: queued speech is not played)."""
        keep = max(0, position - self._base)
        self._samples = self._samples[:keep]
        while self._spans and self._spans[-1].start >= position:
            self._spans.pop()
        if self._spans and self._spans[-1].end > position:
            last = self._spans.pop()
            self._spans.append(Span(last.start, position, last.source, last.speech))
