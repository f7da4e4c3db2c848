"""The generator replica: live sessions' generation, many sessions per replica.

A ``Generator`` is the body of the Serve deployment (``launch`` applies the options). It loads
the motion model once — with one model runner (``sonic_rt.motion.batch``) for all its sessions,
batching their model calls on a GPU — and holds the sessions routed to it (``routing``): each is a
``streaming.Session`` — audio in, motion, rendered frames out — built exactly as the
single-process server builds one, so a session behaves the same wherever it runs. Its sessions'
work runs on a thread pool, one call at a time per session (a ``Session`` is not thread-safe), so
calls of different sessions run side by side.

Every call names its session; a replica that does not hold it raises ``GeneratorLost`` (it was
on a replica that has died, or it has ended).
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sonic_rt.config import MotionParams, VideoParams
from sonic_rt.provenance.marks import Marks
from sonic_rt.render.identity import Identity
from streaming.session import Session

from ..proxy import HOST_BACKLOG_S, GeneratorLost, build_session, host_call
from .scaling import SESSIONS_METRIC

__all__ = ["LOST", "Generator", "GeneratorLost", "Opened"]

LOST = "the generator replica serving this session has stopped; start a new session"


@dataclass(frozen=True)
class Opened:
    """What the front end learns when a session opens: where it runs, and its latency."""

    replica: str
    pid: int
    latency_ms: float


@dataclass
class _Hosted:
    """A session held here: one call at a time (``lock``), and its background generation."""

    session: Session
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ahead: asyncio.Task | None = None


class Generator:
    """Sessions of one replica; ``workers`` threads run their calls."""

    def __init__(self, workers: int | None = None, batching: bool | None = None) -> None:
        from sonic_rt.motion.batch import default_device, make_runner
        from sonic_rt.motion.stream import load_model

        self.model, self.idle = load_model()
        # one runner makes every session's model calls: batched across the sessions here on a GPU
        # (batching None), or as asked; on the replica's GPU when Ray gave it one
        batched = batching if batching is not None else default_device().type == "cuda"
        self.runner = make_runner(self.model, batched)
        self._executor = ThreadPoolExecutor(workers or 2 * (os.cpu_count() or 1), thread_name_prefix="generator")
        self._sessions: dict[str, _Hosted] = {}
        self.replica = _replica_name()

    async def open(self, session: str, identity: Identity, motion: MotionParams, video: VideoParams,
                   marks: Marks) -> Opened:  # fmt: skip
        """Start ``session`` here (the router chose this replica and keeps it here)."""

        def build() -> Session:
            return build_session(identity, self.model, self.idle, motion, video, marks, self.runner, HOST_BACKLOG_S)

        live = await asyncio.get_running_loop().run_in_executor(self._executor, build)
        self._sessions[session] = _Hosted(live)
        return Opened(self.replica, os.getpid(), live.animator.latency_ms)

    async def call(self, session: str, audio: list[tuple], method: str, *args):
        """Queue ``audio`` (16 kHz mono chunks, each with whether it is the client's and its script) on ``session``,
        then ``Session.method(*args)``; ``next_frame`` also returns the ``Stats``. Afterwards the
        session generates ahead in the background, as ``LiveSession`` does in one process."""
        hosted = self._get(session)
        async with hosted.lock:
            result = await asyncio.get_running_loop().run_in_executor(
                self._executor, host_call, hosted.session, method, args, audio
            )
        if hosted.ahead is None or hosted.ahead.done():
            hosted.ahead = asyncio.create_task(self._generate(hosted))
        return result

    async def _generate(self, hosted: _Hosted) -> None:
        loop = asyncio.get_running_loop()
        while True:
            async with hosted.lock:
                if not await loop.run_in_executor(self._executor, hosted.session.generate):
                    return

    async def close(self, session: str) -> None:
        """End ``session`` here (nothing happens if it has already gone)."""
        hosted = self._sessions.pop(session, None)
        if hosted is not None and hosted.ahead is not None:
            hosted.ahead.cancel()

    def sessions(self) -> int:
        return len(self._sessions)

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve's hook for custom autoscaling metrics (``scaling.SessionsPolicy`` reads it)."""
        return {SESSIONS_METRIC: float(len(self._sessions))}

    def _get(self, session: str) -> _Hosted:
        try:
            return self._sessions[session]
        except KeyError:
            raise GeneratorLost(LOST) from None


def _replica_name() -> str:
    from ray import serve
    from ray.serve.exceptions import RayServeException

    try:
        return serve.get_replica_context().replica_id.unique_id
    except RayServeException:  # not inside a Serve replica (a test driving the class directly)
        return f"local-{os.getpid()}"
