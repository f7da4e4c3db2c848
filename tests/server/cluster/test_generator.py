"""The generator replica's body, driven directly (no cluster): sessions open, take audio with their
calls, give frames and counters, and a session it does not hold is answered ``generator_lost``."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from server.cluster.generator import GeneratorLost
from server.proxy import Stats
from sonic_rt.config import MotionParams, VideoParams
from sonic_rt.provenance.marks import Marks

pytest.importorskip("ray.serve", reason="serving on Ray needs the ray extra: pip install 'sonic-rt[ray]'")


@pytest.fixture(scope="module")
def generator():
    from server.cluster.generator import Generator

    return Generator(workers=2)


def speech(seconds: float) -> list[tuple[np.ndarray, bool]]:
    t = np.arange(int(16000 * seconds)) / 16000
    return [((0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), True, None)]


def test_a_session_streams_frames_with_its_counters(generator, astronaut_identity):
    async def go():
        opened = await generator.open("s1", astronaut_identity, MotionParams(), VideoParams(), Marks(0xABC))
        assert opened.latency_ms > 0 and opened.pid > 0
        frames = []
        for i in range(10):
            frame, stats = await generator.call("s1", speech(0.04) if i else speech(0.4), "next_frame")
            frames.append(frame)
        assert [f.index for f in frames] == list(range(10))
        assert frames[0].image.shape == (astronaut_identity.out_size, astronaut_identity.out_size, 3)
        assert isinstance(stats, Stats) and stats.frames_out == 10
        assert any(f.source is not None for f in frames)  # the client's audio, not silence filled in
        assert generator.record_autoscaling_stats() == {"sessions": 1.0}
        assert await generator.call("s1", [], "set_scales", 1.5, None) >= 10
        await generator.close("s1")
        assert generator.sessions() == 0

    asyncio.run(go())


def test_a_session_it_does_not_hold_is_lost(generator):
    async def go():
        with pytest.raises(GeneratorLost, match="start a new session"):
            await generator.call("nobody", [], "next_frame")
        await generator.close("nobody")  # ending what is not there does nothing

    asyncio.run(go())


def test_only_session_calls_are_taken(generator, astronaut_identity):
    async def go():
        await generator.open("s2", astronaut_identity, MotionParams(), VideoParams(), Marks(1))
        with pytest.raises(ValueError, match="not a session call"):
            await generator.call("s2", [], "__init__")
        await generator.close("s2")

    asyncio.run(go())


def test_a_batching_replica_runs_its_sessions_model_calls_together(astronaut_identity):
    from server.cluster.generator import Generator
    from sonic_rt.motion.batch import BatchRunner

    batching = Generator(workers=4, batching=True)
    assert isinstance(batching.runner, BatchRunner)

    async def go():
        for s in ("a", "b", "c"):
            await batching.open(s, astronaut_identity, MotionParams(), VideoParams(), Marks(2))
        for _ in range(5):  # the three sessions' frames asked for at once, as three front-end threads do
            results = await asyncio.gather(*(batching.call(s, speech(0.04), "next_frame") for s in ("a", "b", "c")))
            assert len({frame.index for frame, _ in results}) == 1
        return results

    try:
        results = asyncio.run(go())
        assert all(stats.frames_out == 5 for _, stats in results)
        assert batching.runner.items > batching.runner.batches  # some calls ran together
    finally:
        batching.runner.close()
