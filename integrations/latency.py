"""The latency an avatar adds, per frame: how long after its speech could first have been shown
the frame showing it went out.

Speech cannot be shown before it is handed over, nor faster than it is spoken: a TTS that hands
over a whole sentence at once has its last word shown seconds later, and none of that is the
avatar's doing. So a frame showing second ``s`` of a turn that started at ``s0`` (handed over at
``t0``) is due at ``max(handed(s), t0 + (s - s0))``, and its latency is how much later it went
out. For speech handed over in real time that is the time from the chunk reaching the adapter
(before any resampling or queueing) to its frame going out; for a burst it is the turn's first
frame's delay, held. Bounded: the last ``KEEP`` frames' figures, arrivals not yet shown.
"""

from __future__ import annotations

import bisect
import statistics
from collections import deque

KEEP = 1000  # frames whose latency is kept for the summary


class Latency:
    """Per-frame latency of one avatar, in seconds on the caller's clock."""

    def __init__(self) -> None:
        self._starts: list[float] = []  # client-timeline seconds where each handed-over chunk starts
        self._at: list[float] = []  # when it was handed over
        self._turn: tuple[float, float] | None = None  # the latest turn's start (timeline s) and when
        self._turns: deque[tuple[float, float]] = deque()
        self.recent: deque[float] = deque(maxlen=KEEP)

    def turn(self, start: float, at: float) -> None:
        """A turn's speech starts at ``start`` seconds of the client timeline, handed over at ``at``."""
        self._turns.append((start, at))

    def arrived(self, start: float, at: float) -> None:
        """The audio from ``start`` seconds of the client timeline on was handed over at ``at``."""
        self._starts.append(start)
        self._at.append(at)

    def shown(self, source: float, at: float) -> float | None:
        """The frame showing ``source`` seconds went out at ``at``: its latency (None if that audio
        was never noted)."""
        i = bisect.bisect_right(self._starts, source) - 1
        while len(self._turns) > 1 and self._turns[1][0] <= source:
            self._turns.popleft()  # frames go out in timeline order: earlier turns are done
        if i < 0 or not self._turns or self._turns[0][0] > source:
            return None
        del self._starts[:i], self._at[:i]  # and earlier arrivals
        turn_start, turn_at = self._turns[0]
        latency = at - max(self._at[0], turn_at + (source - turn_start))
        self.recent.append(latency)
        return latency

    def summary(self) -> dict[str, float]:
        """``{"frames", "p50_ms", "max_ms"}`` over the recent frames (empty before any)."""
        if not self.recent:
            return {}
        values = sorted(self.recent)
        return {"frames": len(values), "p50_ms": statistics.median(values) * 1e3, "max_ms": values[-1] * 1e3}
