"""The server's options (``sonic-rt serve`` flags) as one frozen dataclass.

Light (no models, no FastAPI): the command line reads its defaults for ``--help`` without
loading the server. ``server.state`` builds what a running server holds from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .cluster.launch import RaySettings
from .limits import Limits


@dataclass(frozen=True)
class Settings:
    """Server options (``sonic-rt serve`` flags)."""

    # live sessions at once (and renders, with jobs=0); one more gets "busy" (3: what 2 cores hold, soaked)
    max_sessions: int = 3
    portrait_dir: Path | None = None  # identity caches on disk (default: in memory only)
    max_portraits: int = 64  # enrolled portraits kept in memory
    # worker processes that generate the live sessions (server.workers); None: one per core; 0: none,
    # sessions are generated in the server's own process (one GIL for all of them)
    workers: int | None = None
    threads: int | None = None  # threads for the server process's blocking work (default: 2 per core)
    # processes that run enrolments and renders at the lowest priority (server.workers.jobs), so that
    # they never take a live session's CPU; 0: in the server's own threads, renders counted as sessions
    jobs: int = 1
    job_queue: int = 8  # jobs that wait for one of them; one more is told "busy"
    ice_addresses: tuple[str, ...] | None = None  # WebRTC host candidates (default: aioice's own)
    max_recordings: int = 16  # session recordings kept for download (the oldest finished one goes first)
    # API keys (server.keys); None: no keys needed and every requester is "dev" (development mode:
    # `sonic-rt serve` allows it only with --dev on a loopback address)
    keys_db: Path | None = None
    allowed_origins: tuple[str, ...] = ()  # browser pages at these origins may use the server, besides its own
    audit_db: Path | None = None  # the audit log (default: a temporary one, removed when the server stops)
    address: str | None = None  # "host:port" the server listens on, for its server_start record
    ray: RaySettings | None = None  # live sessions run on Ray Serve generator replicas (server.cluster), not here
    # sessions' model calls made at about the same time run as one batch (sonic_rt.motion.batch); None: when on a GPU
    batching: bool | None = None
    limits: Limits = Limits()  # what a client may hold and ask for: connections, deadlines, rates (server.limits)
