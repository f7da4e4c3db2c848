"""The pool of worker processes: started with the server, supervised, restarted, placed on.

``WorkerPool(n)`` starts ``n`` worker processes (``host.main``, with multiprocessing's ``spawn``:
the server's own process has threads and torch loaded, which ``fork`` would copy half-made) and
waits until each has loaded the model. ``open_session`` places a new session on the worker with
the fewest sessions. A thread per worker waits for its process to end: a worker that dies takes
only its own sessions with it (each gets ``GeneratorLost`` at its next call, and its transport
ends it with ``generator_lost``), and a new one is started in its place. ``close`` stops them all
and waits for them.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sonic_rt.errors import SonicError

from . import host

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0  # a worker imports torch and loads the model: seconds, longer on a busy machine
STOP_TIMEOUT_S = 5.0  # a worker told to stop that is still there after this is killed
RESTART_PAUSE_S = 1.0  # between failed starts
WARM_UP_FRAMES = 8


class NoWorker(SonicError):
    """No worker process is running (they are being restarted)."""

    code = "busy"


class WorkerStartError(RuntimeError):
    """A worker process did not come up."""


@dataclass
class Worker:
    """One worker process and the sessions placed on it."""

    index: int
    process: multiprocessing.process.BaseProcess
    control: object  # our end of its control pipe: closing it stops the worker
    address: str
    authkey: bytes
    sessions: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def release(self) -> None:
        """A session placed here has ended."""
        with self._lock:
            self.sessions = max(0, self.sessions - 1)

    def cpu_seconds(self) -> float | None:
        """CPU time the process has used (user + system), from ``/proc``; ``None`` where there is none."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class WorkerPool:
    """``size`` worker processes running ``target`` (``host.main``: live sessions; ``jobs.main``: batch
    jobs) at niceness ``nice``; ``on_restart(index)`` is called when one is replaced."""

    def __init__(self, size: int, batching: bool | None = None, nice: int = 0, on_restart=None,
                 target=host.main) -> None:  # fmt: skip
        if size < 1:
            raise ValueError("a pool has at least one worker")
        self._target = target
        self._ctx = multiprocessing.get_context("spawn")
        self._authkey = os.urandom(32)
        self._batching, self._nice = batching, nice
        self._on_restart = on_restart
        self._dir = Path(tempfile.mkdtemp(prefix="sonic-rt-workers-"))  # 0700: only this user reaches the sockets
        self._lock = threading.Lock()
        self._closing = False
        self.restarts = 0
        self._starts = 0
        self._warm_identity, self._warm_sessions = None, 1
        started = []
        self.workers: list[Worker | None] = []
        try:
            for index in range(size):  # side by side: each imports torch and loads the model
                started.append(self._spawn(index))
            for spawned in started:
                self.workers.append(self._ready(*spawned))
        except BaseException:
            for _, process, control, _ in started:
                control.close()
                process.kill()
                process.join()
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self._watchers = [threading.Thread(target=self._watch, args=(i,), daemon=True, name=f"worker-{i}-watch")
                          for i in range(size)]  # fmt: skip
        for watcher in self._watchers:
            watcher.start()

    @property
    def size(self) -> int:
        return len(self.workers)

    def open_session(self, identity, motion, video, marks, worker: Worker | None = None):
        """A new session on the least loaded running worker, or on ``worker`` (blocking: run it on an executor)."""
        from .session import WorkerSession

        worker = self.place(worker)
        try:
            return WorkerSession(worker, identity, motion, video, marks)
        except BaseException:
            worker.release()
            raise

    def place(self, worker: Worker | None = None) -> Worker:
        """The least loaded running worker (or ``worker``), with one more session or job counted on
        it: give it back with ``Worker.release``."""
        with self._lock:
            if worker is None:
                running = [w for w in self.workers if w is not None and w.alive]
                if not running:
                    raise NoWorker("no worker process is running (one is being restarted); try again in a few seconds")
                worker = min(running, key=lambda w: (w.sessions, w.index))
            with worker._lock:
                worker.sessions += 1
        return worker

    def warm_up(self, identity, sessions: int = 1, frames: int = WARM_UP_FRAMES) -> None:
        """Make a few frames of ``identity`` in ``sessions`` sessions at once on every worker, so
        that a client's first session does not wait for the first model calls (measured: 470 ms for
        the first frame of a new worker), and the parts of as many sessions as a worker is to carry
        at once are made and kept there (``sonic_rt.spares``: making them held the GIL of the
        worker, and the frames of its other sessions, 130 ms for each session that started)."""
        self._warm_identity, self._warm_sessions = identity, sessions  # a worker started in place of one
        for worker in [w for w in self.workers if w is not None]:  # that died is warmed up too
            self._warm_one(worker, frames)

    def load(self) -> list[dict]:
        """Each worker's state, for ``/healthz`` and ``/metrics``."""
        out = []
        for index, worker in enumerate(self.workers):
            if worker is None:
                out.append({"worker": index, "running": False, "sessions": 0})
            else:
                out.append({"worker": index, "running": worker.alive, "pid": worker.pid, "sessions": worker.sessions,
                            "cpu_seconds": worker.cpu_seconds()})  # fmt: skip
        return out

    def close(self) -> None:
        """Stop every worker (their sessions end) and wait for them; no process is left behind."""
        with self._lock:
            self._closing = True
            workers = [w for w in self.workers if w is not None]
        for worker in workers:
            worker.control.close()  # the worker's control.recv() ends: it exits
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        shutil.rmtree(self._dir, ignore_errors=True)

    # inside
    def _warm_one(self, worker: Worker, frames: int = WARM_UP_FRAMES) -> None:
        from sonic_rt.config import MotionParams, VideoParams
        from sonic_rt.provenance.marks import Marks

        sessions = []
        try:
            for _ in range(self._warm_sessions):
                sessions.append(self.open_session(self._warm_identity, MotionParams(), VideoParams(), Marks(0), worker))
            for _ in range(frames):
                for session in sessions:
                    session.next_frame()
        finally:
            for session in sessions:
                session.close()

    def _spawn(self, index: int):
        self._starts += 1
        address = str(self._dir / f"worker-{index}-{self._starts}.sock")
        ours, theirs = self._ctx.Pipe()
        args = (theirs, address, self._authkey, self._batching, self._nice)
        process = self._ctx.Process(target=self._target, args=args, name=f"sonic-rt-worker-{index}", daemon=True)
        process.start()
        theirs.close()  # the worker's end lives in the worker only: when it dies, ours reads EOF
        return index, process, ours, address

    def _ready(self, index: int, process, control, address: str) -> Worker:
        try:
            if not control.poll(READY_TIMEOUT_S):
                raise WorkerStartError(f"worker {index} did not load the model in {READY_TIMEOUT_S:g} s")
            control.recv()  # ("ready", pid)
        except (EOFError, OSError, WorkerStartError) as err:
            control.close()
            process.kill()
            process.join()
            raise WorkerStartError(f"worker {index} did not start (exit code {process.exitcode}): {err}") from err
        log.info("worker %d ready (pid %d)", index, process.pid)
        return Worker(index, process, control, address, self._authkey)

    def _watch(self, index: int) -> None:
        while True:
            worker = self.workers[index]
            worker.process.join()
            with self._lock:
                if self._closing:
                    return
                self.workers[index] = None
            worker.control.close()
            log.error("worker %d (pid %d) exited with code %s; what it held ends (live sessions: generator_lost); "
                      "starting another", index, worker.pid, worker.process.exitcode)  # fmt: skip
            self.restarts += 1
            if self._on_restart is not None:
                self._on_restart(index)
            while True:
                if self._closing:
                    return
                try:
                    replacement = self._ready(*self._spawn(index))
                except WorkerStartError as err:
                    log.error("%s; trying again", err)
                    time.sleep(RESTART_PAUSE_S)
                    continue
                break
            if self._warm_identity is not None:
                with contextlib.suppress(SonicError):  # GeneratorLost: it died again, and is watched again
                    self._warm_one(replacement)
            with self._lock:
                if self._closing:
                    replacement.control.close()
                    replacement.process.join(STOP_TIMEOUT_S)
                    return
                self.workers[index] = replacement
