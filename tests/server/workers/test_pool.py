"""The worker pool: frames from a worker are the frames of a session in this process, a worker
that dies takes only its own sessions and is replaced, sessions go to the least loaded worker,
and closing leaves no process behind."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from server.proxy import GeneratorLost, build_session
from server.workers.pool import WorkerPool
from sonic_rt.config import MotionParams, VideoParams
from sonic_rt.motion.stream import load_model
from sonic_rt.provenance.marks import Marks


@pytest.fixture(scope="module")
def pool():
    pool = WorkerPool(2)
    yield pool
    pool.close()


def wait_for(condition, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_frames_from_a_worker_are_the_frames_of_a_session_in_this_process(pool, astronaut_identity, sentence):
    motion, video, marks = MotionParams(seed=7), VideoParams(), Marks(0x5EED, label=True)
    here = build_session(astronaut_identity, *load_model(), motion, video, marks)
    there = pool.open_session(astronaut_identity, motion, video, marks)
    try:
        for session in (here, there):
            session.push_audio(sentence)  # one chunk: what each has queued when asked is the same
            session.flush()
        for _ in range(len(sentence) * video.fps // 16000 + 5):
            a, b = here.next_frame(), there.next_frame()
            assert a.index == b.index and a.source == b.source and a.speech == b.speech
            assert np.array_equal(a.image, b.image) and np.array_equal(a.audio, b.audio)
            assert np.array_equal(a.motion, b.motion)
        assert there.frames_out == here.frames_out
    finally:
        there.close()


def test_an_error_in_the_worker_is_raised_to_the_caller_and_the_session_goes_on(pool, astronaut_identity):
    session = pool.open_session(astronaut_identity, MotionParams(), VideoParams(), Marks())
    try:
        with pytest.raises(ValueError, match="not a session call: 'explode'"):
            session._call("explode")
        assert session.next_frame().index == 0
    finally:
        session.close()


def test_sessions_go_to_the_least_loaded_worker(pool, astronaut_identity):
    sessions = [pool.open_session(astronaut_identity, MotionParams(), VideoParams(), Marks()) for _ in range(3)]
    try:
        assert sorted(s.worker.index for s in sessions[:2]) == [0, 1]
        assert [w["sessions"] for w in pool.load()] in ([2, 1], [1, 2])
    finally:
        for session in sessions:
            session.close()
    assert [w["sessions"] for w in pool.load()] == [0, 0]


def test_a_killed_worker_ends_only_its_sessions_and_comes_back(pool, astronaut_identity):
    doomed = pool.open_session(astronaut_identity, MotionParams(), VideoParams(), Marks())
    other = pool.open_session(astronaut_identity, MotionParams(), VideoParams(), Marks())
    assert doomed.worker is not other.worker
    index, pid, restarts = doomed.worker.index, doomed.pid, pool.restarts
    try:
        doomed.next_frame()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(GeneratorLost, match="worker process .* has stopped; start a new session"):
            for _ in range(50):  # the socket closes with the process: the next call finds it
                doomed.next_frame()
        for _ in range(5):
            other.next_frame()  # the other worker's session goes on
        wait_for(lambda: pool.workers[index] is not None and pool.workers[index].alive)
        assert pool.restarts == restarts + 1 and pool.workers[index].pid != pid
        doomed.close()
        replacement = pool.open_session(astronaut_identity, MotionParams(), VideoParams(), Marks())
        try:
            assert replacement.worker.index == index  # the least loaded: it has none
            assert replacement.next_frame().image.shape == (astronaut_identity.out_size,) * 2 + (3,)
        finally:
            replacement.close()
    finally:
        other.close()


def test_closing_the_pool_leaves_no_worker_behind(astronaut_identity):
    pool = WorkerPool(1)
    session = pool.open_session(astronaut_identity, MotionParams(), VideoParams(), Marks())
    pid = session.pid
    pool.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(GeneratorLost):
        session.next_frame()
    session.close()
