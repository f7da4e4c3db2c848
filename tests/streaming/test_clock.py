"""The media clock: frame instants from the start, never from the previous frame."""

import asyncio

import pytest

from streaming.clock import MediaClock


class FakeTime:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_due_instants_are_fixed_from_the_start():
    now = FakeTime()
    clock = MediaClock(25, now)
    with pytest.raises(RuntimeError):
        clock.due(0)
    clock.begin()
    assert clock.due(0) == 100.0 and clock.due(25) == pytest.approx(101.0)
    # ten hours of frames, no accumulated error
    assert clock.due(25 * 36000) == pytest.approx(100.0 + 36000, abs=1e-6)
    now.t = 100.5
    assert clock.frames_late(10) == pytest.approx(2.5)


def test_sleep_until_waits_for_the_instant():
    clock = MediaClock(25)
    clock.begin()

    async def run() -> float:
        await clock.sleep_until(clock.due(2))
        return clock.now() - clock.due(2)

    late = asyncio.run(run())
    assert 0 <= late < 0.02
