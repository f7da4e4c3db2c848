"""The worker process: it loads the motion model once and holds the live sessions placed on it.

``main`` is the process's body (``pool`` starts it with multiprocessing's ``spawn``). It listens
on a Unix socket in a folder the server made for it; every connection is one session, served by
a thread of its own (``_host``): the first message opens the session, then come audio chunks
(one-way), calls answered one at a time (``server.proxy.host_call``), until the server shuts the socket.
Between messages the session generates ahead by itself, as ``LiveSession`` makes it do in one
process. Each frame is rendered into the session's shared ``FrameBuffer``; only its audio, motion
and counters cross the socket. The worker ends when the server closes its control pipe — also
when the server is killed, because the pipe's end closes with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import threading
from multiprocessing.connection import Connection, Listener

from sonic_rt.errors import SonicError

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

    from sonic_rt.batch import default_device, make_runner
    from sonic_rt.motion_stream import load_model

    logging.basicConfig(level=logging.INFO, format=f"worker {os.getpid()}: %(levelname)s %(message)s")
    if nice:
        os.nice(nice)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    torch.set_num_threads(1)  # each session's work is small: threads would only spin-wait
    cv2.setNumThreads(1)
    model, idle = load_model()
    runner = make_runner(model, batching if batching is not None else default_device().type == "cuda")
    listener = Listener(address, "AF_UNIX", authkey=authkey)
    threading.Thread(target=_serve, args=(listener, model, idle, runner), daemon=True, name="accept").start()
    control.send(("ready", os.getpid()))
    with contextlib.suppress(EOFError, OSError):
        control.recv()  # nothing is sent: this returns (EOFError) when the server closes the pipe or dies
    os._exit(0)  # sessions' threads are daemons of a process that is done


def _serve(listener: Listener, model, idle, runner) -> None:
    while True:
        try:
            conn = listener.accept()
        except (OSError, EOFError) as err:  # a client that failed the handshake
            log.warning("a connection was refused: %s", err)
            continue
        threading.Thread(target=_host, args=(conn, model, idle, runner), daemon=True, name="session").start()


def _host(conn: Connection, model, idle, runner) -> None:
    """One session, from its open to its close (or its server's end)."""
    try:
        identity, motion, video, marks, frame_path = conn.recv()
        session = build_session(identity, model, idle, motion, video, marks, runner, HOST_BACKLOG_S)
        frames = FrameBuffer(frame_path, identity.out_size)
    except (EOFError, OSError):
        return
    except Exception as err:
        _reply(conn, ERROR, err)
        return
    _reply(conn, OK, Opened(os.getpid(), session.animator.latency_ms))
    try:
        while True:
            message = conn.recv()
            if message[0] == PUSH:
                _, samples, client, script = message
                try:
                    session.push_audio(samples, client=client, script=script)
                except SonicError as err:  # the server checks first, so this is a chunk it let through
                    log.warning("a chunk was refused: %s", err)
            else:  # CALL
                _, method, args = message
                try:
                    result = host_call(session, method, args)
                    if method == "next_frame":
                        frame, stats = result
                        frames.write(frame.image)
                        result = dataclasses.replace(frame, image=None), stats
                except Exception as err:
                    _reply(conn, ERROR, err)
                else:
                    _reply(conn, OK, result)
            while not conn.poll() and session.generate():
                pass
    except (EOFError, OSError):
        return  # the server has gone, or ended the session without a word
    finally:
        frames.close()
        conn.close()


def _reply(conn: Connection, kind: str, value) -> None:
    try:
        conn.send((kind, value))
    except (OSError, EOFError):
        pass  # the server has gone: the next recv ends this session
    except Exception as err:  # an error that does not pickle: its text goes instead
        if kind != ERROR:
            raise
        conn.send((ERROR, RuntimeError(f"{type(value).__name__}: {value} ({err})")))
