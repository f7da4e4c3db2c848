"""The front end's side of a session that runs on a generator replica.

``RemoteSession`` is a ``server.proxy.ProxySession`` whose calls are blocking Serve requests
(``LiveSession`` makes them on its thread pool), routed by the session's id to its replica
(``routing``). A Serve call costs milliseconds (measured: ~5 ms round trip on a 2-core host), so
a session makes one per frame: audio is checked and resampled here as it comes and rides along
with the next call, and the replica generates ahead by itself (``generate`` is not called across
the network). Audio therefore reaches the replica up to one frame later than it reaches a local
session. When that replica dies — mid-call, or before — the call raises ``GeneratorLost`` and
the transport ends this session, and only this one, with that error.
"""

from __future__ import annotations

import contextlib
import uuid

from ray import exceptions as ray_errors

from sonic_rt.config import MotionParams, VideoParams
from sonic_rt.provenance.marks import Marks
from sonic_rt.render.identity import Identity

from ..proxy import GeneratorLost, ProxySession
from .generator import LOST, Opened

OPEN_TIMEOUT_S = 60.0  # a replica being started by the autoscaler loads torch and the model first
CALL_TIMEOUT_S = 10.0  # a call takes milliseconds; this long means the replica is stuck


class RemoteSession(ProxySession):
    """A live session held by a generator replica; ``handle`` is the Generator deployment's."""

    def __init__(self, handle, identity: Identity, motion: MotionParams, video: VideoParams, marks: Marks) -> None:
        self.id = uuid.uuid4().hex
        self._handle = handle.options(session_id=self.id, _by_reference=False)  # gRPC: half the CPU per call
        opened: Opened = self._result(self._handle.open.remote(self.id, identity, motion, video, marks), OPEN_TIMEOUT_S)
        self.replica, self.pid = opened.replica, opened.pid
        super().__init__(identity, motion, video, marks, opened.latency_ms)
        self._pending: list[tuple] = []  # 16 kHz audio not yet sent, whether it is the client's, its script
        self._pending_samples = 0

    def _send_audio(self, samples, client: bool, script) -> None:
        """The chunk travels to the replica with the next call: one call per frame, not one per chunk."""
        self._pending.append((samples, client, script))
        self._pending_samples += len(samples)

    def _unsent_samples(self) -> int:
        return self._pending_samples

    def _drop_audio(self) -> None:
        self._take_pending()

    def close(self) -> None:
        """End the session on its replica (best effort: a dead replica has nothing left to end)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(GeneratorLost):
            self._result(self._handle.close.remote(self.id), CALL_TIMEOUT_S)

    # inside
    def _call(self, method: str, *args):
        if self.closed:
            raise GeneratorLost("this session has ended")
        pending = self._take_pending()
        return self._result(self._handle.call.remote(self.id, pending, method, *args), CALL_TIMEOUT_S)

    def _take_pending(self) -> list[tuple]:
        pending, self._pending, self._pending_samples = self._pending, [], 0
        return pending

    @staticmethod
    def _result(response, timeout_s: float):
        try:
            return response.result(timeout_s=timeout_s)
        except GeneratorLost:
            raise GeneratorLost(LOST) from None  # without Ray's wrapping of the replica's traceback
        except (ray_errors.RayActorError, ray_errors.ActorUnavailableError) as err:
            raise GeneratorLost(LOST) from err
        except TimeoutError as err:
            raise GeneratorLost(f"the generator replica serving this session did not answer in {timeout_s:g} s; "
                                "start a new session") from err  # fmt: skip
