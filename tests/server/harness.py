"""``sonic-rt serve`` as a separate process, for tests that kill it, and waits on its audit log.

The in-process ``LiveServer`` (``tests/server/conftest.py``) cannot be SIGKILLed without taking the
test with it; ``serve`` starts ``python -m server serve --dev`` with this checkout on its path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from server import protocol as p
from server.client import StreamClient
from sonic_rt.audit import AuditLog
from tests.conftest import REPO

START_TIMEOUT_S = 180  # a fresh server loads its models on a shared machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(db: Path, log_path: Path, max_sessions: int = 1):
    """``python -m server serve`` in a subprocess, up and answering; yields ``(process, ws_url)`` and
    kills it if the test leaves it running. Its output goes to ``log_path``."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "server", "serve", "--port", str(port), "--audit-db", str(db),
                                 "--max-sessions", str(max_sessions), "--log-level", "warning", "--dev"], cwd=REPO,
                                env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield proc, f"ws://127.0.0.1:{port}/v1/stream"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def session(log: AuditLog, session_id: str):
    """The session's summary in ``log`` (None if it has no record)."""
    return next((s for s in log.sessions(limit=1000) if s.id == session_id), None)


async def ended(log: AuditLog, session_id: str, timeout: float = 20):
    """The session's summary once its end is on record."""
    deadline = time.monotonic() + timeout
    while (found := session(log, session_id)) is None or found.ended is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"session {session_id} was not ended within {timeout} s")
        await asyncio.sleep(0.05)
    return found


async def frames(client: StreamClient, n: int) -> int:
    """Read until ``n`` video frames have come."""
    got = 0
    async for item in client:
        got += isinstance(item, p.Media) and item.kind == p.KIND_VIDEO
        if got >= n:
            return got
    raise AssertionError("the stream ended early")


def eventually(condition, seconds: float = 5) -> bool:
    """Whether ``condition()`` comes true within ``seconds`` (a session ends a moment after its client hears so)."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return True
        time.sleep(0.05)
    return condition()
