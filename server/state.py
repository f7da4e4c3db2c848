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

from sonic_rt.animator import Animator
from sonic_rt.audit import SAMPLE_CONSENT
from sonic_rt.batch import Runner, default_device, make_runner
from sonic_rt.config import GeometryParams, MotionParams, VideoParams
from sonic_rt.errors import ConsentRequired, SonicError
from sonic_rt.identity import Identity, IdentityStore, cache_key, enroll, sha256_of
from sonic_rt.marks import Marks
from sonic_rt.offline import JobParams
from sonic_rt.samples import PREFIX, SAMPLES, load_sample
from streaming.recording import Recording
from streaming.session import Session
from streaming.vad import VoiceActivity

from .audit import ServerAudit
from .auth import Access, Grant, Principal
from .cluster.launch import RaySettings
from .gates import Gates
from .keys import KeyStore
from .limits import Limits
from .metrics import Metrics


class UnknownPortrait(SonicError):
    code = "unknown_portrait"


class BadParams(SonicError):
    code = "bad_params"


class Busy(SonicError):
    code = "busy"


class NoRecording(SonicError):
    code = "no_recording"


@dataclass(frozen=True)
class Settings:
    """Server options (``sonic-rt serve`` flags)."""

    max_sessions: int = 3  # live sessions and renders at once; one more gets "busy" (3: what 2 cores hold, soaked)
    portrait_dir: Path | None = None  # identity caches on disk (default: in memory only)
    max_portraits: int = 64  # enrolled portraits kept in memory
    workers: int | None = None  # threads for sessions' work (default: 2 per core; more only contend for the GIL)
    ice_addresses: tuple[str, ...] | None = None  # WebRTC host candidates (default: aioice's own)
    max_recordings: int = 16  # session recordings kept for download (the oldest finished one goes first)
    # API keys (server.keys); None: no keys needed and every requester is "dev" (development mode:
    # `sonic-rt serve` allows it only with --dev on a loopback address)
    keys_db: Path | None = None
    allowed_origins: tuple[str, ...] = ()  # browser pages at these origins may use the server, besides its own
    audit_db: Path | None = None  # the audit log (default: a temporary one, removed when the server stops)
    address: str | None = None  # "host:port" the server listens on, for its server_start record
    ray: RaySettings | None = None  # live sessions run on Ray Serve generator replicas (server.cluster), not here
    # sessions' model calls made at about the same time run as one batch (sonic_rt.batch); None: when on a GPU
    batching: bool | None = None
    limits: Limits = Limits()  # what a client may hold and ask for: connections, deadlines, rates (server.limits)


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


@dataclass(frozen=True)
class Enrolled:
    """An enrolled portrait and what the audit log says of it: its id, its image's hash, its consent."""

    id: str
    identity: Identity
    consent: str  # the uploader's attestation, or SAMPLE_CONSENT for a built-in sample

    @property
    def sha256(self) -> str:
        return self.identity.image_sha256


class Portraits:
    """Enrolled portraits by id (``sample:NAME`` ids enrol on first use); thread-safe."""

    def __init__(self, analyzer, limit: int, directory: Path | None) -> None:
        self._analyzer = analyzer
        self._limit = limit
        self._store = IdentityStore(directory) if directory else None
        self._cache: OrderedDict[str, Enrolled] = OrderedDict()
        self._lock = threading.Lock()

    def enroll(self, image: bytes | str, geometry: GeometryParams, consent: str | None = None) -> Enrolled:
        """Enrol encoded image bytes (with the uploader's ``consent`` attestation) or ``sample:NAME``;
        the same image and geometry get the same id."""
        if isinstance(image, str):
            if image[len(PREFIX) :] not in SAMPLES:
                raise UnknownPortrait(f"unknown sample {image!r}; samples: {', '.join(PREFIX + n for n in SAMPLES)}")
            key, consent = f"{image}-e{geometry.expand_ratio:g}-r{geometry.min_resolution}", SAMPLE_CONSENT
            source = load_sample(image)
        elif not consent:
            raise ConsentRequired("an uploaded portrait is only enrolled with its uploader's consent attestation")
        else:
            key, source = cache_key(sha256_of(image), geometry), image
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            if self._store is not None and isinstance(source, bytes):
                identity = self._store.get(source, geometry, self._analyzer)
            else:
                identity = enroll(source, geometry, self._analyzer)
            self._cache[key] = enrolled = Enrolled(key, identity, consent)
            while len(self._cache) > self._limit:
                self._cache.popitem(last=False)
        return enrolled

    def lookup(self, portrait_id: str) -> Enrolled:
        if portrait_id.startswith(PREFIX) and "-e" not in portrait_id:
            return self.enroll(portrait_id, GeometryParams())
        with self._lock:
            enrolled = self._cache.get(portrait_id)
        if enrolled is None:
            raise UnknownPortrait(f"no portrait {portrait_id!r}: enrol it first with POST /v1/portraits")
        return enrolled

    def get(self, portrait_id: str) -> Identity:
        return self.lookup(portrait_id).identity


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

    def new_session(self, identity: Identity, motion: MotionParams, video: VideoParams, marks: Marks) -> Session:
        """A live session for ``identity`` whose frames carry ``marks``: here, or on a generator replica
        when the server runs on Ray (blocking: run it on the executor). End it with ``end_session``."""
        if self.generators is not None:
            from .cluster.remote import RemoteSession

            session = RemoteSession(self.generators, identity, motion, video, marks)
            self.metrics.replica_sessions.labels(session.replica).inc()
            return session
        animator = Animator(
            identity, self.model, self.idle, motion, video, render=False, marks=marks, runner=self.runner
        )
        return Session(animator, VoiceActivity())

    def placement(self, session: Session) -> dict:
        """Where ``session`` runs, for its ``ready`` event: the replica's id when on Ray, else nothing."""
        return {"replica": session.replica} if self.generators is not None else {}

    def end_session(self, session: Session) -> None:
        """Free what ``session`` holds outside this process (its place on a replica); blocking."""
        if self.generators is not None and not session.closed:
            session.close()
            self.metrics.replica_sessions.labels(session.replica).dec()


def build_state(settings: Settings) -> AppState:
    from sonic_rt.face import FaceAnalyzer
    from sonic_rt.motion_stream import load_model

    if settings.ice_addresses is not None:
        from .webrtc import use_host_addresses

        use_host_addresses(settings.ice_addresses)
    # sessions on Ray replicas hold a thread while they wait on their replica, not a core: more threads
    workers = settings.workers or (4 * settings.max_sessions + 4 if settings.ray else 2 * (os.cpu_count() or 1))
    executor = ThreadPoolExecutor(workers, thread_name_prefix="sonic-rt")
    audit = ServerAudit(settings.audit_db, executor)
    audit.start_server(settings.address)  # first: a log that cannot be written stops the server here
    model, idle = load_model()
    metrics = Metrics()
    batched = settings.batching if settings.batching is not None else default_device().type == "cuda"
    options = {"on_batch": metrics.batch_size.observe} if batched else {}
    state = AppState(
        settings=settings,
        model=model,
        idle=idle,
        portraits=Portraits(FaceAnalyzer(), settings.max_portraits, settings.portrait_dir),
        executor=executor,
        metrics=metrics,
        audit=audit,
        runner=make_runner(model, batched, **options),
    )
    if settings.ray is not None:
        from .cluster import launch

        state.generators = launch.start(settings.ray)
    return state
