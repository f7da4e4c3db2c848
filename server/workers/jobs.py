"""Batch work — enrolments and offline renders — in worker processes at the lowest priority.

A live session has a deadline every 40 ms; an enrolment or a render has none, and a render takes
every core it can get (6x real time). So batch jobs run in processes of their own started at
niceness 19 (``main``): the kernel gives them what the live sessions leave, and all of it when no
session runs. Measured in the server's own threads instead, 24 uploads held a live session's
frames for 2.3 s and 2 renders for 5.5 s.

``Jobs`` is the server's side: at most one job per process runs at a time, at most ``queue`` more
wait for one, and a job beyond that is refused at once with ``busy`` (never a request that hangs).
Requests for jobs hold a place from their headers to their answer (``hold_request``): at most as
many are in flight at once as the processes and the queue hold, so that a burst of uploads beyond
them is refused before the server's process reads any of their bodies.
A render reports its progress as it goes (``on_progress``), and an ``on_progress`` that raises
(the key's minutes are used up) stops it. A job process that dies fails the job it was running
with ``JobLost`` and is replaced, as a live worker is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path

from sonic_rt.config import GeometryParams
from sonic_rt.errors import SonicError

from .host import ERROR, OK, SWITCH_INTERVAL_S, _reply
from .pool import NoWorker, WorkerPool

log = logging.getLogger(__name__)

NICE = 19  # the lowest priority there is
PROGRESS = "progress"
ENROLL, RENDER = "enroll", "render"


class JobLost(SonicError):
    """The process running a job died before it was done."""

    code = "internal"


class JobsBusy(NoWorker):
    """Every job process is busy and the queue is full."""


# -- the job process --------------------------------------------------------------------------------


def main(control: Connection, address: str, authkey: bytes, batching: bool | None, nice: int = NICE) -> None:
    """A job process: say ``("ready", pid)`` on ``control``, then run the jobs that connect to
    ``address``, one at a time, until ``control`` closes."""
    import cv2
    import torch

    logging.basicConfig(level=logging.INFO, format=f"jobs {os.getpid()}: %(levelname)s %(message)s")
    os.nice(nice)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    torch.set_num_threads(1)  # the motion model runs fastest so (sonic_rt.offline.generate)
    cv2.setNumThreads(1)
    listener = Listener(address, "AF_UNIX", authkey=authkey)
    threading.Thread(target=_serve, args=(listener,), daemon=True, name="jobs").start()
    control.send(("ready", os.getpid()))
    with contextlib.suppress(EOFError, OSError):
        control.recv()  # returns (EOFError) when the server closes the pipe or dies
    os._exit(0)


def _serve(listener: Listener) -> None:
    while True:
        try:
            conn = listener.accept()
            kind, args = conn.recv()
        except (OSError, EOFError) as err:
            log.warning("a job was dropped before it started: %s", err)
            continue
        try:
            result = _run(conn, kind, args)
        except (BrokenPipeError, ConnectionResetError, EOFError):
            log.info("a %s was stopped by the server", kind)  # its on_progress refused it, or it left
        except Exception as err:
            _reply(conn, ERROR, err)
        else:
            _reply(conn, OK, result)
        finally:
            conn.close()


def _run(conn: Connection, kind: str, args: tuple):
    from sonic_rt import offline

    if kind == ENROLL:
        from sonic_rt.render.identity import enroll_cached

        source, geometry, directory = args
        return enroll_cached(source, geometry, offline._face_analyzer(), directory)
    identity, source, output, options = args  # RENDER
    return offline.generate(identity, source, output, progress=lambda done, total: conn.send((PROGRESS, (done, total))),
                            **options)  # fmt: skip


# -- the server's side ------------------------------------------------------------------------------


class Jobs:
    """``processes`` job processes (at niceness ``nice``) and a queue of at most ``queue`` jobs."""

    def __init__(self, processes: int = 1, queue: int = 8, nice: int = NICE, on_restart=None) -> None:
        self._pool = WorkerPool(processes, nice=nice, on_restart=on_restart, target=main)
        self.queue = queue
        self._lock = threading.Lock()
        self._free = threading.Semaphore(processes)
        self.running = 0
        self.waiting = 0
        self.requests = 0  # requests for jobs in flight (``hold_request``)

    def enroll(self, source, geometry: GeometryParams, directory: Path | None = None):
        """The ``Identity`` of a portrait (encoded bytes, or an RGB array), enrolled in a job process
        (with ``directory``: through the identity store there)."""
        return self.run(ENROLL, (source, geometry, directory))

    def render(self, identity, source, output: Path, on_progress=None, **options):
        """``sonic_rt.offline.generate(identity, source, output, **options)`` in a job process;
        ``on_progress(done, total)`` as frames are written: raising in it stops the render."""
        return self.run(RENDER, (identity, source, output, options), on_progress)

    def run(self, kind: str, args: tuple, on_progress=None):
        """Run a job, waiting for a free process if need be (blocking: run it on an executor);
        ``JobsBusy`` at once if the queue is full."""
        with self._lock:
            if self.full:
                raise self.busy()
            self.waiting += 1
        self._free.acquire()
        with self._lock:
            self.waiting -= 1
            self.running += 1
        try:
            worker = self._pool.place()
            try:
                return _ask(worker, kind, args, on_progress)
            finally:
                worker.release()
        finally:
            with self._lock:
                self.running -= 1
            self._free.release()

    @property
    def places(self) -> int:
        """How many jobs may be running or waiting at once."""
        return self._pool.size + self.queue

    @property
    def full(self) -> bool:
        """Whether a job asked now would be refused (``busy``): every process busy, the queue full."""
        return self.running + self.waiting >= self.places

    def hold_request(self) -> contextlib.ExitStack:
        """A place for a request that will ask for a job, held from its headers to its answer (exit
        the stack returned to free it): ``JobsBusy`` at once if the jobs are full, or as many such
        requests as they have places are in flight already. (A request read is parsed in the server's
        own process, which its live sessions share; 50 uploads read at once there held a session's
        frames 120-200 ms, where the jobs could take only 9 of them.)"""
        with self._lock:
            if self.full or self.requests >= self.places:
                raise self.busy()
            self.requests += 1
        held = contextlib.ExitStack()
        held.callback(self._request_done)
        return held

    def _request_done(self) -> None:
        with self._lock:
            self.requests -= 1

    def busy(self) -> JobsBusy:
        return JobsBusy(f"the server is at its limit of {self._pool.size} batch job(s) running and {self.queue} "
                        "waiting; try again later")  # fmt: skip

    def load(self) -> dict:
        """For ``/healthz``: jobs running and waiting, requests for jobs in flight, and the processes."""
        return {"running": self.running, "waiting": self.waiting, "queue": self.queue, "requests": self.requests,
                "processes": self._pool.load()}  # fmt: skip

    def close(self) -> None:
        self._pool.close()


def _ask(worker, kind: str, args: tuple, on_progress) -> object:
    lost = JobLost(f"the process running this {kind} stopped before it was done; try again")
    try:
        conn = Client(worker.address, "AF_UNIX", authkey=worker.authkey)
    except (OSError, EOFError) as err:
        raise lost from err
    with conn:
        try:
            conn.send((kind, args))
            while True:
                what, value = conn.recv()
                if what != PROGRESS:
                    break
                if on_progress is not None:
                    on_progress(*value)  # raising here closes the connection: the job process stops it
        except (OSError, EOFError) as err:
            raise lost from err
    if what == ERROR:
        raise value
    return value
