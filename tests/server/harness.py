"""``sonic-rt serve`` as a separate process, for tests that kill it, waits on its audit log, and an
aiortc peer offered to any server (``offer_peer``).

The in-process ``LiveServer`` (``tests/server/conftest.py``) cannot be SIGKILLed without taking the
test with it; ``serve`` starts ``python -m server serve --dev`` with this checkout on its path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from server import protocol as p
from server.client import StreamClient
from sonic_rt.provenance.audit import AuditLog
from tests.conftest import REPO

START_TIMEOUT_S = 180  # a fresh server loads its models on a shared machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(db: Path, log_path: Path, max_sessions: int = 1, args: tuple[str, ...] = (), stop_s: float = 0,
          env: dict[str, str] | None = None):  # fmt: skip
    """``python -m server serve`` (with ``args``) in a subprocess, up and answering; yields
    ``(process, ws_url)`` and, if the test leaves it running, stops it: SIGTERM first when
    ``stop_s`` (a server on Ray stops its cluster on the way out), then SIGKILL. Its output goes to
    ``log_path``; ``env`` adds to its environment."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "server", "serve", "--port", str(port), "--audit-db", str(db),
                                 "--max-sessions", str(max_sessions), "--log-level", "warning", "--dev", *args],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
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
        if proc.poll() is None and stop_s:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=stop_s)
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


class Offered:
    """An aiortc peer that offered itself to ``POST /v1/webrtc/offer``: its data channel's events
    (in order) and the tracks the answer brought, once ``response`` was a 200."""

    def __init__(self, pc, channel) -> None:
        self.pc, self.channel = pc, channel
        self.response: httpx.Response | None = None
        self.events: list[dict] = []
        self.tracks: dict = {}

    async def track(self, kind: str, timeout: float = 10):
        """The answer's ``kind`` track (it comes with the answer, within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while kind not in self.tracks:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {kind} track within {timeout} s")
            await asyncio.sleep(0.01)
        return self.tracks[kind]

    async def event(self, done, timeout: float = 30) -> None:
        """Wait until ``done(events)`` is true."""
        deadline = time.monotonic() + timeout
        while not done(self.events):
            if time.monotonic() > deadline:
                raise AssertionError(f"not there within {timeout} s; events: {[e['type'] for e in self.events]}")
            await asyncio.sleep(0.05)


async def offer_peer(base_url: str, microphone=None, headers: dict | None = None, on_event=None,
                     **fields) -> Offered:  # fmt: skip
    """A browser's part in WebRTC, by aiortc: ``microphone`` (a track; else audio is only received),
    video received, a ``control`` data channel; the offer (with ``fields``: portrait, params, record,
    ...) posted and, if answered, the answer applied. ``on_event(event)`` sees each event as it comes."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if microphone is not None:
        pc.addTrack(microphone)
    else:
        pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    offered = Offered(pc, pc.createDataChannel("control"))

    def message(text: str) -> None:
        offered.events.append(json.loads(text))
        if on_event is not None:
            on_event(offered.events[-1])

    offered.channel.on("message", message)
    pc.on("track", lambda track: offered.tracks.__setitem__(track.kind, track))
    await pc.setLocalDescription(await pc.createOffer())
    offer = {"sdp": pc.localDescription.sdp, "type": "offer", **fields}
    async with httpx.AsyncClient() as http:
        offered.response = await http.post(f"{base_url}/v1/webrtc/offer", headers=headers, timeout=30, json=offer)
    if offered.response.status_code == 200:
        answer = offered.response.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    return offered
