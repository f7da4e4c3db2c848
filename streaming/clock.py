"""The media clock of one output stream: frame ``n`` is due at ``start + n / fps``.

Frames are scheduled against fixed instants computed from the start, never by sleeping a frame
period after the previous frame, so lateness does not accumulate: a stream that runs for hours
is still on its grid.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class MediaClock:
    """Wall-clock instants of a constant-rate stream (``now`` is injectable for tests)."""

    def __init__(self, fps: int, now: Callable[[], float] = time.monotonic) -> None:
        self.fps = fps
        self.now = now
        self.start: float | None = None

    def begin(self, at: float | None = None) -> None:
        """Put frame 0 at ``at`` (default: now)."""
        self.start = self.now() if at is None else at

    def due(self, n: int) -> float:
        """When frame ``n`` is due."""
        if self.start is None:
            raise RuntimeError("the clock has not begun")
        return self.start + n / self.fps

    def frames_late(self, n: int) -> float:
        """How many frame periods frame ``n`` is past due now (negative: early)."""
        return (self.now() - self.due(n)) * self.fps

    async def sleep_until(self, instant: float) -> None:
        delay = instant - self.now()
        if delay > 0:
            await asyncio.sleep(delay)
