"""How late the server's event loop runs what is due: a live frame is a callback of the loop, so a
loop held up by anything (a burst of handshakes, a parse, a thread holding the GIL) holds every
session's frames that long. A task wakes every ``PERIOD_S`` and records how late it woke in
``sonic_rt_event_loop_lag_seconds`` (an operator's first look when streams stutter)."""

from __future__ import annotations

import asyncio

from prometheus_client import Histogram

PERIOD_S = 0.02


async def watch(histogram: Histogram, period_s: float = PERIOD_S) -> None:
    """Record the loop's lateness into ``histogram`` until cancelled."""
    loop = asyncio.get_running_loop()
    due = loop.time() + period_s
    while True:
        await asyncio.sleep(max(0.0, due - loop.time()))
        now = loop.time()
        histogram.observe(max(0.0, now - due))
        due = max(due + period_s, now)  # after a long hold, the next wake is a period from now, not a burst
