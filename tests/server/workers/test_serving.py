"""Worker processes behind the real server: a killed worker ends only its sessions, with
``generator_lost`` and its audit record, comes back and takes new sessions; ``/healthz`` and
``/metrics`` show each worker's load; a server that stops, or is killed, leaves no worker behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server import protocol as p
from server.client import StreamClient
from tests.server.conftest import run
from tests.server.harness import eventually


def video(media) -> list:
    return [m for m in media if not isinstance(m, dict) and m.kind == p.KIND_VIDEO]


async def frames(client: StreamClient, count: int) -> tuple[list, list[dict]]:
    media, events = [], []
    async for item in client:
        (events if isinstance(item, dict) else media).append(item)
        if len(video(media)) >= count or any(e.get("fatal") for e in events):
            break
    return media, events


def test_a_killed_worker_ends_only_its_sessions_and_comes_back(server, sentence):
    pool = server.state.pool
    assert pool is not None and pool.size == 2, "the test server runs its sessions in two worker processes"
    restarts = pool.restarts

    async def go():
        async with StreamClient(server.ws) as doomed, StreamClient(server.ws) as other:
            first, second = await doomed.start(), await other.start()
            assert {first["worker"], second["worker"]} == {0, 1}  # each on the least loaded
            await frames(doomed, 5)
            await frames(other, 5)
            os.kill(pool.workers[first["worker"]].pid, signal.SIGKILL)
            media, events = await frames(doomed, 10_000)  # until its fatal error
            theirs, _ = await frames(other, 25)  # the other worker's session goes on
            return first, events, doomed.ws.close_code, theirs

    ready, events, close_code, theirs = run(go())
    assert [(e["code"], e["fatal"]) for e in events if e["type"] == "error"] == [("generator_lost", True)]
    message = next(e["message"] for e in events if e["type"] == "error")
    assert "worker process" in message and "start a new session" in message
    assert close_code == 1011 and len(video(theirs)) >= 25
    ended = next(s for s in server.state.audit.log.sessions(limit=20) if s.id == ready["session"])
    assert ended.end_reason == "error: generator_lost"
    assert eventually(lambda: server.state.slots.used == 0)
    assert eventually(lambda: all(w is not None and w.alive for w in pool.workers), seconds=120)
    assert pool.restarts == restarts + 1
    health = httpx.get(f"{server.http}/healthz").json()
    assert [w["running"] for w in health["workers"]] == [True, True]
    assert "sonic_rt_worker_restarts_total 1.0" in httpx.get(f"{server.http}/metrics").text

    async def again():  # the replacement takes new sessions
        async with StreamClient(server.ws) as a, StreamClient(server.ws) as b:
            ready = [await a.start(), await b.start()]
            got = [await frames(a, 5), await frames(b, 5)]
            return ready, got

    ready, got = run(again())
    assert {r["worker"] for r in ready} == {0, 1}
    assert all(len(video(media)) >= 5 for media, _ in got)


def test_metrics_show_each_workers_sessions_and_cpu(server):
    pool = server.state.pool
    assert eventually(lambda: server.state.slots.used == 0 and all(w["sessions"] == 0 for w in pool.load()))

    async def go():
        async with StreamClient(server.ws) as client:
            ready = await client.start()
            await frames(client, 3)
            return ready, httpx.get(f"{server.http}/healthz").json(), httpx.get(f"{server.http}/metrics").text

    ready, health, metrics = run(go())
    placed = health["workers"][ready["worker"]]
    assert placed["sessions"] == 1 and placed["cpu_seconds"] > 0 and placed["pid"] > 0
    assert f'sonic_rt_worker_sessions{{worker="{ready["worker"]}"}} 1.0' in metrics
    assert "sonic_rt_worker_cpu_seconds" in metrics


def serve(*args: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("sonic-rt")
    proc = subprocess.Popen([str(exe), "serve", "--dev", "--port", str(port), "--log-level", "warning", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            return proc, httpx.get(f"{url}/healthz", timeout=1).json()
        except httpx.HTTPError:
            assert proc.poll() is None, "the server exited"
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not start")


def gone(pid: int, seconds: float = 15) -> bool:
    def dead() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"  # exited, not yet reaped

    return eventually(dead, seconds)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_a_server_that_stops_or_is_killed_leaves_no_worker_behind(tmp_path, stop):
    proc, health = serve("--workers", "2", "--audit-db", str(tmp_path / "audit.db"))
    pids = [w["pid"] for w in health["workers"]]
    assert len(pids) == 2
    proc.send_signal(stop)
    proc.wait(30)
    assert all(gone(pid) for pid in pids)
