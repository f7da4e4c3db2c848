"""The front end's side of a remote session, against a generator replica run in this process
through a stand-in for Serve's handle: audio is checked and resampled here and rides with the
next call, and a dead or silent replica becomes ``generator_lost``."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from server.cluster.generator import GeneratorLost
from sonic_rt.config import MotionParams, VideoParams
from sonic_rt.errors import BadSampleRate
from sonic_rt.provenance.marks import Marks
from streaming.intake import AudioOverflow

pytest.importorskip("ray.serve", reason="serving on Ray needs the ray extra: pip install 'sonic-rt[ray]'")

from ray import exceptions as ray_errors  # noqa: E402

from server.cluster.remote import RemoteSession  # noqa: E402


class Response:
    def __init__(self, outcome) -> None:
        self.outcome = outcome

    def result(self, timeout_s: float):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class Handle:
    """Serve's handle, in one process: ``handle.options(...).method.remote(*args).result()``."""

    def __init__(self, generator, fail=None) -> None:
        self.generator, self.fail, self.calls = generator, fail, []
        self._method = None

    def options(self, **_) -> Handle:
        return self

    def __getattr__(self, method: str) -> Handle:
        bound = Handle(self.generator, self.fail)
        bound.calls, bound._method = self.calls, method
        return bound

    def remote(self, *args) -> Response:
        self.calls.append((self._method, args))
        if self.fail is not None:
            return Response(self.fail)
        try:
            return Response(asyncio.run(getattr(self.generator, self._method)(*args)))
        except Exception as err:  # as Serve hands a replica's exception to the caller
            return Response(err)


@pytest.fixture(scope="module")
def generator():
    from server.cluster.generator import Generator

    return Generator(workers=2)


def open_session(generator, identity, handle=None) -> tuple[RemoteSession, Handle]:
    handle = handle or Handle(generator)
    return RemoteSession(handle, identity, MotionParams(), VideoParams(), Marks(7)), handle


def test_audio_rides_with_the_next_frame_call_resampled_to_16k(generator, astronaut_identity):
    session, handle = open_session(generator, astronaut_identity)
    stereo_48k = (np.sin(np.arange(48000 * 2) / 20) * 8000).astype(np.int16)  # 1 s, interleaved stereo
    for chunk in np.split(stereo_48k, 50):
        session.push_audio(chunk, 48000, 2)
    assert [m for m, _ in handle.calls] == ["open"]  # nothing sent yet
    frame = session.next_frame()
    method, (sid, audio, name) = handle.calls[-1]
    assert (method, name) == ("call", "next_frame") and sid == session.id
    assert abs(sum(len(s) for s, _, _ in audio) - 16000) < 32  # (the resampler keeps a few samples back)
    assert all(client and script is None for _, client, script in audio)  # recognised on the replica
    assert frame.index == 0 and session.frames_out == 1
    assert session.generate() is False  # the replica generates ahead by itself
    session.close()
    assert generator.sessions() == 0


def test_bad_audio_is_refused_at_once(generator, astronaut_identity):
    session, _ = open_session(generator, astronaut_identity)
    with pytest.raises(BadSampleRate):
        session.push_audio(np.zeros(10, np.int16), 3)
    with pytest.raises(AudioOverflow):
        session.push_audio(np.zeros(16000 * 121, np.int16))
    session.close()


def test_interrupt_drops_the_audio_not_yet_sent(generator, astronaut_identity):
    session, handle = open_session(generator, astronaut_identity)
    session.push_audio(np.ones(16000, np.int16))
    session.interrupt()
    assert handle.calls[-1][1][1] == []  # the interrupt carries none of it
    session.close()


@pytest.mark.parametrize(
    "failure",
    [ray_errors.ActorDiedError(), ray_errors.ActorUnavailableError("gone", b"\0" * 16), TimeoutError()],
    ids=["died", "unavailable", "silent"],
)
def test_a_lost_replica_is_generator_lost(generator, astronaut_identity, failure):
    session, _ = open_session(generator, astronaut_identity)
    session._handle = Handle(generator, fail=failure)  # from now on every call meets the failure
    with pytest.raises(GeneratorLost, match="start a new session"):
        session.next_frame()
    session.close()  # ending a lost session is quiet
    asyncio.run(generator.close(session.id))


def test_a_session_the_replica_does_not_hold_is_generator_lost(generator, astronaut_identity):
    session, _ = open_session(generator, astronaut_identity)
    asyncio.run(generator.close(session.id))  # as if its replica had been replaced
    with pytest.raises(GeneratorLost, match="start a new session"):
        session.next_frame()
