"""Which of a session's frames are still current after an interrupt: a generation counter.

An interrupt reaches the session a moment after the agent asks for it (the session's work is
off the event loop, or on a server), and frames made before it may still be on their way: a
frame rendered ahead and waiting for its instant, one in a socket, one between its video and its
audio in a framework's queue. ``FrameGate.close`` is called the instant the agent interrupts:
from then on no frame is current. The session's interrupt answers with the index of the first
frame made after it, and ``open`` lets frames from there on through, if no newer interrupt
came in between (the epoch says which one it answers).
"""

from __future__ import annotations


class FrameGate:
    """Frames with ``index >= floor`` are current; none while an interrupt is under way."""

    def __init__(self) -> None:
        self.epoch = 0  # interrupts so far
        self._floor: int | None = 0  # first current frame; None: an interrupt is under way

    def close(self) -> int:
        """An interrupt starts: no frame is current until ``open``; returns its epoch."""
        self.epoch += 1
        self._floor = None
        return self.epoch

    def open(self, epoch: int, first_fresh: int) -> bool:
        """The session's interrupt ``epoch`` is done and frame ``first_fresh`` is the first made
        after it; ignored (False) when a later interrupt has closed the gate since."""
        if epoch != self.epoch:
            return False
        self._floor = first_fresh
        return True

    def current(self, index: int) -> bool:
        return self._floor is not None and index >= self._floor
