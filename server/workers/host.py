"""The worker process: it loads the motion model once and holds the live sessions placed on it.

``main`` is the process's body (``pool`` starts it with multiprocessing's ``spawn``). It listens
on a Unix socket in a folder the server made for it; every connection is one session. Its first
message opens the session (``_accept``); then come audio chunks (one-way) and calls answered one
at a time (``server.proxy.host_call``), until the server shuts the socket. One thread serves all
the sessions (``Host``): what they are asked first, and while nothing is asked, each in turn
generates ahead, as ``LiveSession`` makes a session do in one process. Each frame is rendered
into the session's shared ``FrameBuffer``; only its audio, motion and counters cross the socket.
The worker ends when the server closes its control pipe — also
when the server is killed, because the pipe's end closes with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import sys
import threading
from multiprocessing.connection import Connection, Listener, wait

from sonic_rt.errors import SonicError

from .. import heap
from ..proxy import HOST_BACKLOG_S, build_session, host_call
from .frames import FrameBuffer

log = logging.getLogger(__name__)

# messages from the server on a session's connection (it ends the session by shutting the socket)
PUSH, CALL = "push", "call"
# and the replies to an open or a call
OK, ERROR = "ok", "error"
SWITCH_INTERVAL_S = 0.005  # as the server's own process (server.cli)


@dataclasses.dataclass(frozen=True)
class Opened:
    """What the server learns when a session opens here."""

    pid: int
    latency_ms: float


def main(control: Connection, address: str, authkey: bytes, batching: bool | None, nice: int = 0) -> None:
    """The worker: load the model, say ``("ready", pid)`` on ``control``, then serve sessions that
    connect to ``address`` until ``control`` closes."""
    import cv2
    import torch

    from sonic_rt.motion.batch import default_device, make_runner
    from sonic_rt.motion.stream import load_model

    logging.basicConfig(level=logging.INFO, format=f"worker {os.getpid()}: %(levelname)s %(message)s")
    if nice:
        os.nice(nice)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    torch.set_num_threads(1)  # each session's work is small: threads would only spin-wait
    cv2.setNumThreads(1)
    model, idle = load_model()
    runner = make_runner(model, batching if batching is not None else default_device().type == "cuda")
    heap.freeze()  # the model and the libraries: out of the collector's full passes
    host = Host()
    listener = Listener(address, "AF_UNIX", authkey=authkey)
    threading.Thread(target=_accept, args=(listener, host, model, idle, runner), daemon=True, name="accept").start()
    threading.Thread(target=host.run, daemon=True, name="sessions").start()
    control.send(("ready", os.getpid()))
    with contextlib.suppress(EOFError, OSError):
        control.recv()  # nothing is sent: this returns (EOFError) when the server closes the pipe or dies
    os._exit(0)  # the threads are daemons of a process that is done


def _accept(listener: Listener, host: Host, model, idle, runner) -> None:
    """Take each new connection's ``open`` and build its session here, beside the sessions running
    (building one took ~0.2 s, in their thread every frame of theirs that long; its slow parts are
    now kept from sessions that ended, ``sonic_rt.spares``, and it takes ~20 ms)."""
    while True:
        try:
            conn = listener.accept()
            identity, motion, video, marks, frame_path = conn.recv()
        except (OSError, EOFError) as err:  # a client that failed the handshake, or left at once
            log.warning("a connection was dropped before its session opened: %s", err)
            continue
        try:
            session = build_session(identity, model, idle, motion, video, marks, runner, HOST_BACKLOG_S)
            frames = FrameBuffer(frame_path, identity.out_size)
        except Exception as err:
            _reply(conn, ERROR, err)
            conn.close()
            continue
        host.add(_Hosted(conn, session, frames))


@dataclasses.dataclass(eq=False)
class _Hosted:
    conn: Connection
    session: object  # streaming.Session
    frames: FrameBuffer
    behind: bool = True  # audio may wait that it could animate now
    failed: Exception | None = None  # what went wrong generating ahead: the answer to its next call

    def fileno(self) -> int:
        return self.conn.fileno()


class Host:
    """Every session of this worker, served by one thread: calls first, then generating ahead.

    One thread, not one per session: the sessions' work is Python that takes turns on the GIL
    anyway, and every torch or socket call that lets go of it would wait up to a switch interval
    (5 ms) to get it back while another session's thread holds it."""

    def __init__(self) -> None:
        self._new: queue.SimpleQueue[_Hosted] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        self._sessions: list[_Hosted] = []
        self._turn = 0  # whose turn it is to generate ahead

    def add(self, hosted: _Hosted) -> None:
        self._new.put(hosted)
        os.write(self._wake_w, b"x")

    def run(self) -> None:
        while True:
            behind = [h for h in self._sessions if h.behind]
            ready = wait([self._wake_r, *self._sessions], timeout=0 if behind else None)
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
                while not self._new.empty():
                    hosted = self._new.get()
                    self._sessions.append(hosted)
                    _reply(hosted.conn, OK, Opened(os.getpid(), hosted.session.animator.latency_ms))
            for hosted in ready:
                if hosted is not self._wake_r:
                    self._serve(hosted)
            # what was asked is answered: one session generates ahead, then the others' turn (not only
            # when nothing is asked: with a few sessions something nearly always is, and generating
            # ahead would starve)
            behind = [h for h in self._sessions if h.behind]
            if behind:
                self._turn = (self._turn + 1) % len(behind)
                self._generate(behind[self._turn])

    @staticmethod
    def _generate(hosted: _Hosted) -> None:
        try:
            hosted.behind = hosted.session.generate()
        except Exception as err:  # a bug: it ends this session (its next call says so), not the others
            log.exception("a session failed generating ahead")
            hosted.failed, hosted.behind = err, False

    def _serve(self, hosted: _Hosted) -> None:
        """Every message waiting on ``hosted``'s connection; at its end the session ends."""
        try:
            while hosted.conn.poll():
                self._message(hosted, hosted.conn.recv())
        except (EOFError, OSError):  # the server shut the socket (the session ended) or has gone
            self._sessions.remove(hosted)
            hosted.frames.close()
            hosted.conn.close()
        else:
            hosted.behind = hosted.failed is None

    @staticmethod
    def _message(hosted: _Hosted, message: tuple) -> None:
        session = hosted.session
        if message[0] == PUSH:
            _, samples, client, script = message
            try:
                session.push_audio(samples, client=client, script=script)
            except SonicError as err:  # the server checks first, so this is a chunk it let through
                log.warning("a chunk was refused: %s", err)
            except Exception as err:
                log.exception("a chunk failed")
                hosted.failed = hosted.failed or err
            return
        _, method, args = message  # CALL
        try:
            if hosted.failed is not None:
                raise hosted.failed
            result = host_call(session, method, args)
            if method == "next_frame":
                frame, stats = result
                hosted.frames.write(frame.image)
                result = dataclasses.replace(frame, image=None), stats
        except Exception as err:
            _reply(hosted.conn, ERROR, err)
        else:
            _reply(hosted.conn, OK, result)


def _reply(conn: Connection, kind: str, value) -> None:
    try:
        conn.send((kind, value))
    except (OSError, EOFError):
        pass  # the server has gone: the next recv ends this session
    except Exception as err:  # an error that does not pickle: its text goes instead
        if kind != ERROR:
            raise
        conn.send((ERROR, RuntimeError(f"{type(value).__name__}: {value} ({err})")))
