"""server.lane: at most ``per_turn`` calls a turn of the event loop, the rest in order in later turns,
and other callbacks served between them."""

from __future__ import annotations

import asyncio

import pytest

from server.lane import Lane


def test_calls_beyond_a_turns_share_wait_in_order_and_let_other_callbacks_run_between():
    async def run() -> list[str]:
        loop = asyncio.get_running_loop()
        lane, log = Lane(2), []

        def edge(k: int) -> None:
            if lane.admit():
                log.append(f"edge{k}")
            else:
                lane.wait(lambda: log.append(f"edge{k}"))

        def live(k: int) -> None:  # a live session's callback, ready every turn
            log.append(f"live{k}")
            if k < 4:
                loop.call_soon(live, k + 1)

        loop.call_soon(live, 0)
        for k in range(7):  # seven requests arrive in one turn
            edge(k)
        for _ in range(10):
            await asyncio.sleep(0)
        return log

    log = asyncio.run(run())
    edges = [e for e in log if e.startswith("edge")]
    assert edges == [f"edge{k}" for k in range(7)]  # all of them, first come first served
    # two in the turn they came, then two a turn, a live callback between each turn's share
    assert log[:3] == ["edge0", "edge1", "live0"]
    turns = "".join("|" if e.startswith("live") else "e" for e in log)
    assert max(len(run) for run in turns.split("|")) == 2


def test_an_idle_lane_admits_at_once_and_stops_scheduling_turns():
    async def run() -> None:
        lane = Lane(1)
        assert lane.admit()
        assert not lane.admit()  # this turn's share is used
        ran = []
        lane.wait(lambda: ran.append(1))
        assert lane.waiting == 1
        for _ in range(3):
            await asyncio.sleep(0)
        assert ran == [1] and lane.waiting == 0
        assert lane.admit()  # a new turn: room again
        for _ in range(3):
            await asyncio.sleep(0)
        assert not lane._turn_ahead  # nothing waits: no turn scheduled, the loop is left alone

    asyncio.run(run())


def test_a_lane_needs_room_for_one_call():
    with pytest.raises(ValueError, match="per_turn"):
        Lane(0)
