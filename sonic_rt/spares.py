"""What is slow to make, made once and used again: a session's parts are given back when it ends.

A live session has a phone decoder (pocketsphinx loads its acoustic model: 95-180 ms, measured on
this 2-core machine) and a voice-activity model (silero's TorchScript: 40-65 ms), and making
either holds Python's GIL nearly throughout (a thread beside it got none for 130 ms): every other
session of the process had its frames that much late whenever one started. ``Spares`` keeps the
parts of the sessions that have ended and gives them, cleaned, to the next: after the first
sessions, a session starts without making either. ``stock`` makes some before they are needed (a
worker process, before it serves). What is kept is never freed: a process holds as many as it
ever had sessions at once (about 28 MB a decoder, 5 MB a voice-activity model).
"""

from __future__ import annotations

import collections
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Spares(Generic[T]):
    """Objects that ``make`` makes, each held by an owner and kept when its owner is gone;
    ``clean`` makes a kept one as good as new before it is given again. Thread-safe."""

    def __init__(self, make: Callable[[], T], clean: Callable[[T], None]) -> None:
        self._make, self._clean = make, clean
        self._free: collections.deque[T] = collections.deque()
        self._lock = threading.Lock()
        self.made = 0  # made in all, kept or held

    def take(self, owner: object) -> T:
        """One for ``owner``: a kept one, cleaned, or a new one; kept again once ``owner`` is collected."""
        try:
            item = self._free.pop()
        except IndexError:
            item = self._new()
        else:
            self._clean(item)
        weakref.finalize(owner, self._free.append, item)
        return item

    def stock(self, count: int) -> None:
        """Make as many as it takes for ``count`` to be kept."""
        while len(self._free) < count:
            self._free.append(self._new())

    @property
    def kept(self) -> int:
        """How many are kept, for no owner."""
        return len(self._free)

    def _new(self) -> T:
        item = self._make()
        with self._lock:
            self.made += 1
        return item
