"""LiveSession's calls into its session: one at a time, even when a caller is cancelled mid-call."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from streaming.live import LiveSession

WAIT_S = 5.0


class SlowSession:
    """Just what ``LiveSession`` touches for a push; the first push blocks until released."""

    fps = 25
    generates_ahead = False

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0
        self.pushes = 0
        self.first_running = threading.Event()
        self.release = threading.Event()

    def push_audio(self, pcm, sample_rate, channels, client, script) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        self.pushes += 1
        if self.pushes == 1:
            self.first_running.set()
            self.release.wait(WAIT_S)
        self.inside -= 1


def test_a_call_whose_caller_is_cancelled_keeps_the_session_until_it_returns():
    session = SlowSession()
    pcm = np.zeros(320, np.float32)

    async def run() -> None:
        with ThreadPoolExecutor(2) as pool:
            live = LiveSession(session, pool)
            first = asyncio.create_task(live.push_audio(pcm))
            assert await asyncio.to_thread(session.first_running.wait, WAIT_S)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            second = asyncio.create_task(live.push_audio(pcm))
            await asyncio.sleep(0.05)
            assert not second.done() and session.pushes == 1  # waits for the first call, still running
            session.release.set()
            await asyncio.wait_for(second, WAIT_S)

    asyncio.run(run())
    assert (session.pushes, session.most_inside) == (2, 1)
