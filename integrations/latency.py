"""The latency an avatar adds, per frame: from the agent handing over a piece of its speech to
the frame that shows it going out.

``arrived`` notes when the audio from each position of the client timeline was handed over (the
agent's TTS chunk reaching the adapter, before any resampling or queueing); ``shown`` looks up
the frame's ``source`` and records the difference. Bounded: only the last ``KEEP`` frames' figures
and the arrivals not yet shown are kept.
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
        self.recent: deque[float] = deque(maxlen=KEEP)

    def arrived(self, start: float, at: float) -> None:
        """The audio from ``start`` seconds of the client timeline on was handed over at ``at``."""
        self._starts.append(start)
        self._at.append(at)

    def shown(self, source: float, at: float) -> float | None:
        """The frame showing ``source`` seconds went out at ``at``: its latency (None if that audio
        was never noted, e.g. before a restart)."""
        i = bisect.bisect_right(self._starts, source) - 1
        if i < 0:
            return None
        latency = at - self._at[i]
        del self._starts[:i], self._at[:i]  # frames go out in timeline order: earlier arrivals are done
        self.recent.append(latency)
        return latency

    def summary(self) -> dict[str, float]:
        """``{"frames", "p50_ms", "max_ms"}`` over the recent frames (empty before any)."""
        if not self.recent:
            return {}
        values = sorted(self.recent)
        return {"frames": len(values), "p50_ms": statistics.median(values) * 1e3, "max_ms": values[-1] * 1e3}
