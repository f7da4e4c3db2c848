"""The edge's share of the event loop: what new connections send is taken a few at a time per turn.

A live session's audio, frames and control messages are callbacks of the server's one event loop,
and so is every HTTP request and WebSocket handshake. In each turn the loop runs every callback
that became ready in the last one: 400 handshakes that arrive together were parsed, routed and
answered in one turn, and a live frame due meanwhile waited behind all of them (measured: gaps of
340-500 ms in a live stream). A ``Lane`` lets at most ``per_turn`` pieces of edge work run in a
turn; the rest wait in order, their connections paused, for the turns after, and between those
the loop serves everything else (``server.connections`` puts every HTTP connection's data
through it; a WebSocket's, once upgraded, goes straight to its session).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class Lane:
    """At most ``per_turn`` calls a turn of the event loop; more wait, first come first served."""

    def __init__(self, per_turn: int) -> None:
        if per_turn < 1:
            raise ValueError(f"per_turn must be at least 1, not {per_turn}")
        self.per_turn = per_turn
        self._used = 0  # calls run this turn
        self._waiting: deque[Callable[[], None]] = deque()
        self._turn_ahead = False  # a turn is scheduled: it resets the count and runs what waits

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def admit(self) -> bool:
        """True, counted, if a call may run now (this turn has room and nothing waits before it)."""
        if self._waiting or self._used >= self.per_turn:
            return False
        self._used += 1
        self._next_turn()
        return True

    def wait(self, call: Callable[[], None]) -> None:
        """Run ``call`` in a later turn, after everything waiting before it."""
        self._waiting.append(call)
        self._next_turn()

    def _next_turn(self) -> None:
        if not self._turn_ahead:
            self._turn_ahead = True
            asyncio.get_running_loop().call_soon(self._turn)  # (what call_soon schedules runs next turn)

    def _turn(self) -> None:
        self._turn_ahead = False
        self._used = 0
        while self._waiting and self._used < self.per_turn:
            self._used += 1
            self._waiting.popleft()()
        if self._used:
            self._next_turn()  # to count the next turn from 0, and run what still waits
