"""The server's side of a session generated in a worker process.

A ``WorkerSession`` is a ``server.proxy.ProxySession`` over a Unix socket of its own to its
worker. Audio chunks go as they come, one way (a few tens of microseconds each), so they reach
the worker as soon as they would reach a session in this process; a call (a frame, flush,
interrupt, scales) waits for its answer. A frame's picture comes through the session's shared
``FrameBuffer``, copied out before the next call. A worker that dies ends the session with
``GeneratorLost`` at its next call; one that does not answer within ``CALL_TIMEOUT_S`` too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import struct
import threading
from multiprocessing.connection import Client

from sonic_rt.config import MotionParams, VideoParams
from sonic_rt.provenance.marks import Marks
from sonic_rt.render.identity import Identity

from ..proxy import GeneratorLost, ProxySession
from .frames import FrameBuffer
from .host import CALL, ERROR, PUSH, Opened

OPEN_TIMEOUT_S = 30.0  # building a session takes milliseconds; a worker this slow is stuck
# audio is sent from the event loop: a worker that has not read its socket for this long (its buffer
# full: seconds of audio) is stuck, and the send fails instead of holding the loop
SEND_TIMEOUT_S = 1.0
CALL_TIMEOUT_S = 10.0  # a call takes milliseconds
LOST = "the worker process generating this session has stopped; start a new session"


class WorkerSession(ProxySession):
    """A live session held by ``worker`` (a ``pool.Worker``), which ``close`` gives it back to."""

    def __init__(self, worker, identity: Identity, motion: MotionParams, video: VideoParams, marks: Marks) -> None:
        self.worker = worker
        self.closed = False
        self._lock = threading.Lock()  # one message, or one call and its answer, at a time
        self._conn = None
        self._frames = FrameBuffer.create(identity.out_size)
        try:
            self._conn = _connect(worker.address, worker.authkey)
            with socket.socket(fileno=os.dup(self._conn.fileno())) as sock:  # the same socket, another fd
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(SEND_TIMEOUT_S), 0))
            self._send((identity, motion, video, marks, self._frames.path))
            opened: Opened = self._answer(OPEN_TIMEOUT_S)
        except BaseException:
            self._frames.close()
            if self._conn is not None:
                self._conn.close()
            raise
        finally:
            self._frames.unlink()  # both processes map it now (or the open failed): nothing to leave behind
        self.pid = opened.pid
        super().__init__(identity, motion, video, marks, opened.latency_ms)
        self._sent = 0  # samples sent since the counters last came back

    def _send_audio(self, samples, client: bool, script) -> None:
        with self._lock:
            self._check_open()
            self._send((PUSH, samples, client, script))
            self._sent += len(samples)

    def _unsent_samples(self) -> int:
        return self._sent

    def _call(self, method: str, *args):
        with self._lock:
            self._check_open()
            self._send((CALL, method, args))
            result = self._answer(CALL_TIMEOUT_S)
            if method != "next_frame":
                return result
            frame, stats = result
            self._sent = 0
            return dataclasses.replace(frame, image=self._frames.read()), stats

    def close(self) -> None:
        """End the session in its worker and give its place back (a dead worker has nothing to end).
        A call still on its way is cut short (it raises ``GeneratorLost`` to no one): the socket is
        shut down under it, so that closing never waits for the worker."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(self._conn.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)  # the worker sees the end
        with self._lock:
            self._conn.close()
            self._frames.close()
        self.worker.release()

    # inside
    def _check_open(self) -> None:
        if self.closed:
            raise GeneratorLost("this session has ended")

    def _send(self, message) -> None:
        try:
            self._conn.send(message)
        except OSError as err:
            raise self._lost() from err

    def _answer(self, timeout_s: float):
        try:
            if not self._conn.poll(timeout_s):
                self._conn.close()  # an answer that came later would be taken for the next call's
                raise GeneratorLost(f"the worker process generating this session did not answer in {timeout_s:g} s; "
                                    "start a new session")  # fmt: skip
            kind, value = self._conn.recv()
        except (EOFError, OSError) as err:
            raise self._lost() from err
        if kind == ERROR:
            raise value
        return value


    def _lost(self) -> GeneratorLost:
        """A call cut short: by ``close`` (the session ended), or by the worker's end."""
        return GeneratorLost("this session has ended" if self.closed else LOST)


def _connect(address: str, authkey: bytes):
    try:
        return Client(address, "AF_UNIX", authkey=authkey)
    except (OSError, EOFError) as err:
        raise GeneratorLost(LOST) from err
