"""What a running server holds, built once in the app's lifespan and passed to the routes."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sonic_rt.config import MotionParams, VideoParams
from sonic_rt.errors import SonicError
from sonic_rt.face.samples import PREFIX, SAMPLES
from sonic_rt.motion.batch import Runner, default_device, make_runner
from sonic_rt.offline import JobParams
from sonic_rt.provenance.marks import Marks
from sonic_rt.render.identity import Identity
from streaming.recording import Recording
from streaming.session import Session, stock

from .audit import ServerAudit
from .auth import Access, Grant, Principal
from .gates import Gates
from .keys import KeyStore
from .metrics import Metrics
from .portraits import Portraits, local_enroller
from .proxy import build_session
from .settings import Settings


class BadParams(SonicError):
    code = "bad_params"


class Busy(SonicError):
    code = "busy"


class NoRecording(SonicError):
    code = "no_recording"


class Slots:
    """Admission control: at most ``capacity`` sessions; no queueing, a clear no instead."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0

    def try_acquire(self) -> bool:
        if self.used >= self.capacity:
            return False
        self.used += 1
        return True

    def release(self) -> None:
        self.used = max(0, self.used - 1)


class Recordings:
    """Sessions' MP4 recordings by session id, in a temporary folder removed at shutdown."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._dir = Path(tempfile.mkdtemp(prefix="sonic-rt-recordings-"))
        self._items: OrderedDict[str, Recording] = OrderedDict()
        self._lock = threading.Lock()

    def new(self, session_id: str, size: int, fps: int) -> Recording:
        with self._lock:
            self._items[session_id] = recording = Recording(self._dir / f"{session_id}.mp4", size, fps)
            while len(self._items) > self._limit:
                oldest = next((k for k, r in self._items.items() if r.closed), next(iter(self._items)))
                self._items.pop(oldest).discard()
        return recording

    def get(self, session_id: str) -> Recording:
        with self._lock:
            recording = self._items.get(session_id)
        if recording is None:
            raise NoRecording(f"no recording for session {session_id!r} (start it with record: true; "
                              f"the last {self._limit} are kept)")  # fmt: skip
        return recording

    def close(self) -> None:
        with self._lock:
            for recording in self._items.values():
                recording.close()
            self._items.clear()
        shutil.rmtree(self._dir, ignore_errors=True)


def split_params(values: dict) -> tuple[MotionParams, VideoParams]:
    """Flat Sonic parameters of a live session -> its motion and video parameters; what is not
    given keeps the live defaults (``MotionParams``' 2-frame blocks, not the offline 8)."""
    given = {k: v for k, v in values.items() if v is not None}
    try:
        job = JobParams.from_flat(**{"block_frames": MotionParams.block_frames, **given})
    except (TypeError, ValueError) as err:
        raise BadParams(str(err)) from None
    return job.motion, job.video


@dataclass
class AppState:
    settings: Settings
    model: object
    idle: object
    portraits: Portraits
    executor: ThreadPoolExecutor
    metrics: Metrics
    audit: ServerAudit
    runner: Runner | None = None  # makes every session's model calls (None: each session its own DirectRunner)
    slots: Slots = field(init=False)
    recordings: Recordings = field(init=False)
    access: Access = field(init=False)  # who may use the server, and how much (server.auth)
    peers: dict = field(default_factory=dict)  # live WebRTC sessions by id
    generators: object = None  # the Generator deployment's handle when sessions run on Ray (settings.ray)
    pool: object = None  # the worker processes generating live sessions (a server.workers.pool.WorkerPool)
    jobs: object = None  # the processes running enrolments and renders at low priority (server.workers.jobs.Jobs)
    gates: Gates = field(init=False)  # the limits at the edge (settings.limits), applied (server.gates)

    def __post_init__(self) -> None:
        self.slots = Slots(self.settings.max_sessions)
        self.recordings = Recordings(self.settings.max_recordings)
        keys = self.settings.keys_db
        self.access = Access(KeyStore(keys) if keys is not None else None, self.settings.allowed_origins)
        self.gates = Gates(self.settings.limits, self.metrics, keyed=keys is not None)
        if self.access.store is not None:  # the minutes each key already used today, as the log has them
            midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            for key in self.access.store.list():
                self.access.seed_usage(key.name, self.audit.log.usage_seconds(key.name, midnight))

    def admit(self, principal: Principal) -> Grant:
        """A place for a session of ``principal``'s: among its key's own sessions and minutes
        (``TooManySessions``, ``QuotaExceeded``), then among the server's (``Busy``: no queueing, a
        clear no instead of everyone slowing). Give both back with ``release``."""
        grant = self.access.acquire(principal)
        if not self.slots.try_acquire():
            grant.release()
            self.metrics.rejected.labels("busy").inc()
            raise Busy(f"the server is at its limit of {self.slots.capacity} sessions; try again later")
        return grant

    def release(self, grant: Grant) -> None:
        """Give back the places ``admit`` took (once; later calls do nothing)."""
        if not grant.released:
            self.slots.release()
            grant.release()

    def admit_job(self, principal: Principal) -> Grant:
        """A place for a render of ``principal``'s: among its key's own sessions and minutes, then
        — where renders run in job processes — in their queue (``Jobs``: ``busy`` when it is full),
        not among the live sessions, whose CPU a render does not take; else as a live session.
        Give it back with ``release_job``."""
        return self.admit(principal) if self.jobs is None else self.access.acquire(principal)

    def release_job(self, grant: Grant) -> None:
        if self.jobs is None:
            self.release(grant)
        else:
            grant.release()

    def new_session(self, identity: Identity, motion: MotionParams, video: VideoParams, marks: Marks) -> Session:
        """A live session for ``identity`` whose frames carry ``marks``: here, or on a generator replica
        when the server runs on Ray (blocking: run it on the executor). End it with ``end_session``."""
        if self.generators is not None:
            from .cluster.remote import RemoteSession

            session = RemoteSession(self.generators, identity, motion, video, marks)
            self.metrics.replica_sessions.labels(session.replica).inc()
            return session
        if self.pool is not None:
            return self.pool.open_session(identity, motion, video, marks)
        return build_session(identity, self.model, self.idle, motion, video, marks, self.runner)

    def placement(self, session: Session) -> dict:
        """Where ``session`` runs, for its ``ready`` event: its worker process, or its replica on Ray."""
        if self.generators is not None:
            return {"replica": session.replica}
        return {"worker": session.worker.index} if self.pool is not None else {}

    def end_session(self, session: Session) -> None:
        """Free what ``session`` holds outside this process (its place on a worker or a replica); blocking."""
        if self.generators is not None and not session.closed:
            session.close()
            self.metrics.replica_sessions.labels(session.replica).dec()
        elif self.pool is not None:
            session.close()

    def close(self) -> None:
        """Stop what the state started outside this process (the worker and job processes); blocking."""
        for processes in (self.pool, self.jobs):
            if processes is not None:
                processes.close()


def build_state(settings: Settings) -> AppState:
    from sonic_rt.motion.stream import load_model

    # sessions elsewhere (worker processes, Ray replicas) hold a thread while they wait on a call, not a
    # core: more threads
    remote = settings.ray is not None or worker_count(settings) > 0
    threads = settings.threads or (4 * settings.max_sessions + 4 if remote else 2 * (os.cpu_count() or 1))
    executor = ThreadPoolExecutor(threads, thread_name_prefix="sonic-rt")
    audit = ServerAudit(settings.audit_db, executor)
    audit.start_server(settings.address)  # first: a log that cannot be written stops the server here
    metrics = Metrics()
    # the motion model, where live sessions are generated in this process (workers and replicas load
    # their own; renders load theirs in the job process, or in sonic_rt.offline)
    model = idle = runner = None
    if not remote:
        model, idle = load_model()
        batched = settings.batching if settings.batching is not None else default_device().type == "cuda"
        runner = make_runner(model, batched, **({"on_batch": metrics.batch_size.observe} if batched else {}))
        stock(settings.max_sessions, phones=model.config.inputs != "mel")
    jobs = None
    if settings.jobs:
        from .workers.jobs import Jobs

        jobs = Jobs(settings.jobs, settings.job_queue, on_restart=lambda index: metrics.worker_restarts.inc())
        enroller = jobs.enroll
    else:
        from sonic_rt.face.analysis import FaceAnalyzer

        enroller = local_enroller(FaceAnalyzer())
    state = AppState(
        settings=settings,
        model=model,
        idle=idle,
        portraits=Portraits(enroller, settings.max_portraits, settings.portrait_dir),
        executor=executor,
        metrics=metrics,
        audit=audit,
        runner=runner,
        jobs=jobs,
    )
    try:
        if settings.ray is not None:
            from .cluster import launch

            state.generators = launch.start(settings.ray)
        elif worker_count(settings) > 0:
            from .workers.pool import WorkerPool

            state.pool = WorkerPool(worker_count(settings), settings.batching,
                                    on_restart=lambda index: metrics.worker_restarts.inc())  # fmt: skip
            # as many sessions on each as it carries when the places are shared out evenly
            each = -(-settings.max_sessions // state.pool.size)
            state.pool.warm_up(state.portraits.get(PREFIX + next(iter(SAMPLES))), each)
    except BaseException:
        state.close()
        raise
    return state


def worker_count(settings: Settings) -> int:
    """The worker processes ``settings`` ask for: one per core unless told (none on Ray: replicas generate)."""
    if settings.ray is not None:
        return 0
    return os.cpu_count() or 1 if settings.workers is None else settings.workers
