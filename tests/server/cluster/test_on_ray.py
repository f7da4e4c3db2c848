"""``sonic-rt serve --ray`` on a local Ray cluster: sessions spread over generator replicas and stay
on theirs, a killed replica ends only its own sessions (with ``generator_lost``), and the
deployment grows with the number of sessions."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from server.client import StreamClient
from sonic_rt.provenance.audit import AuditLog
from tests.server.harness import ended, serve

pytest.importorskip("ray.serve", reason="serving on Ray needs the ray extra: pip install 'sonic-rt[ray]'")

REPLICA = "ServeReplica:sonic-rt:Generator"  # in a replica process's title
SPEECH = (np.sin(np.arange(16000 * 30) * 2 * np.pi * 180 / 16000) * 6000).astype(np.int16)  # 30 s, voiced


def replica_pids(root: int) -> list[int]:
    """The generator replicas among ``root``'s descendants (this server's own cluster, no other)."""
    parent, title = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                title[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")

    def under(pid: int) -> bool:
        while pid > 1:
            pid = parent.get(pid, 0)
            if pid == root:
                return True
        return False

    return sorted(pid for pid, text in title.items() if REPLICA in text and under(pid))


def running(ws_url: str) -> int:
    """The generator replicas the server reports running (``/healthz``)."""
    http = ws_url.replace("ws://", "http://").removesuffix("/v1/stream")
    return httpx.get(f"{http}/healthz", timeout=10).json()["replicas"]


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(0.25)
    return value


class Client:
    """One live session: started, fed speech in real time, its frames and events counted."""

    def __init__(self, url: str) -> None:
        self.stream = StreamClient(url)
        self.frames = 0
        self.errors: list[dict] = []
        self.ready: dict = {}
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> Client:
        await self.stream.__aenter__()
        self.ready = await self.stream.start(portrait="sample:astronaut")
        self._tasks = [asyncio.create_task(self.stream.stream_audio(SPEECH)), asyncio.create_task(self._read())]
        return self

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for item in self.stream:
                if isinstance(item, dict) and item["type"] == "error":
                    self.errors.append(item)
                elif not isinstance(item, dict):
                    self.frames += item.kind == 1

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await self.stream.__aexit__(None, None, None)


async def until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ray")
    args = ("--ray", "--replicas", "2:2", "--sessions-per-replica", "2", "--replica-cpus", "0.5",
            "--ice-address", "127.0.0.1")  # fmt: skip
    with serve(tmp / "audit.db", tmp / "server.log", max_sessions=6, args=args, stop_s=30) as (proc, url):
        wait_for(lambda: len(replica_pids(proc.pid)) == 2, 120, "two generator replicas")
        yield proc, url, tmp / "audit.db"


def test_sessions_spread_over_replicas_and_a_killed_replica_ends_only_its_own(two_replicas):
    proc, url, db = two_replicas

    async def go():
        clients = [await Client(url).start() for _ in range(4)]
        try:
            homes = [c.ready["replica"] for c in clients]
            assert sorted(homes.count(r) for r in set(homes)) == [2, 2], homes  # the fewest-sessions replica first
            await until(lambda: all(c.frames >= 25 for c in clients), 30, "every session streams")

            victim = replica_pids(proc.pid)[0]
            os.kill(victim, signal.SIGKILL)
            await until(lambda: sum(bool(c.errors) for c in clients) == 2, 30, "two sessions told")
            lost = [c for c in clients if c.errors]
            kept = [c for c in clients if not c.errors]
            assert {c.ready["replica"] for c in lost} != {c.ready["replica"] for c in kept}
            assert len({c.ready["replica"] for c in lost}) == 1  # the sessions of one replica, and only they
            for c in lost:
                assert c.errors[0]["code"] == "generator_lost" and c.errors[0]["fatal"]
                assert "start a new session" in c.errors[0]["message"]
            counts = [c.frames for c in kept]
            await until(lambda: all(c.frames >= n + 50 for c, n in zip(kept, counts, strict=True)), 30,
                        "the other replica's sessions go on")  # fmt: skip
            log = AuditLog(db)
            for c in lost:
                assert (await ended(log, c.ready["session"])).end_reason == "error: generator_lost"

            # the server goes on serving: a new session starts and streams (Serve restarts the dead replica)
            fresh = await Client(url).start()
            clients.append(fresh)
            await until(lambda: fresh.frames >= 25, 60, "a new session streams")
            assert not fresh.errors
        finally:
            for c in clients:
                await c.close()

    asyncio.run(go())


def test_sessions_stay_on_their_replica(two_replicas):
    """Every call of a session reaches the replica it started on: its frames keep coming, numbered
    without a gap, from one continuous motion state (a session moved to another replica would be
    answered generator_lost)."""
    _, url, _ = two_replicas

    async def go():
        clients = [await Client(url).start() for _ in range(3)]
        try:
            await until(lambda: all(c.frames >= 75 for c in clients), 60, "three seconds of frames each")
            assert not any(c.errors for c in clients)
            http = url.replace("ws://", "http://").removesuffix("/v1/stream")
            metrics = httpx.get(f"{http}/metrics", timeout=10).text
            placed = [line for line in metrics.splitlines() if line.startswith("sonic_rt_replica_sessions{")]
            on = [float(line.split()[-1]) for line in placed]
            assert sum(on) == 3  # per replica, as the front end placed them
        finally:
            for c in clients:
                await c.close()

    asyncio.run(go())


def test_a_webrtc_session_runs_on_a_replica(two_replicas):
    from server.webrtc import use_host_addresses
    from tests.server.harness import offer_peer

    _, url, _ = two_replicas
    use_host_addresses(("127.0.0.1",))  # this process's peer offers loopback, as the server does

    async def go():
        peer = await offer_peer(url.replace("ws://", "http://").removesuffix("/v1/stream"), portrait="sample:astronaut")
        try:
            assert peer.response.status_code == 200, peer.response.text
            track = await peer.track("video")
            frames = [await track.recv() for _ in range(25)]
            await peer.event(lambda events: any(e["type"] == "ready" for e in events))
            ready = next(e for e in peer.events if e["type"] == "ready")
            assert ready["replica"] and frames[-1].width == ready["width"]
        finally:
            await peer.pc.close()

    asyncio.run(go())


def test_a_replica_that_stops_answering_ends_its_sessions_after_the_call_timeout(two_replicas):
    proc, url, _ = two_replicas
    wait_for(lambda: running(url) == 2, 120, "two replicas running")

    async def go():
        clients = [await Client(url).start() for _ in range(2)]  # one on each replica (the fewest first)
        assert clients[0].ready["replica"] != clients[1].ready["replica"]
        await until(lambda: all(c.frames >= 25 for c in clients), 30, "both stream")
        frozen = replica_pids(proc.pid)[0]
        os.kill(frozen, signal.SIGSTOP)  # alive, but silent
        try:
            await until(lambda: sum(bool(c.errors) for c in clients) == 1, 40, "the frozen replica's session told")
            lost, kept = (clients[0], clients[1]) if clients[0].errors else (clients[1], clients[0])
            assert lost.errors[0]["code"] == "generator_lost" and "did not answer" in lost.errors[0]["message"]
            count = kept.frames
            await until(lambda: kept.frames >= count + 25, 20, "the other replica's session goes on")
        finally:
            os.kill(frozen, signal.SIGKILL)  # Serve replaces it
            for c in clients:
                await c.close()

    asyncio.run(go())


def test_the_deployment_grows_with_the_sessions(tmp_path):
    args = ("--ray", "--replicas", "1:2", "--sessions-per-replica", "1", "--replica-cpus", "0.5")
    with serve(tmp_path / "audit.db", tmp_path / "server.log", max_sessions=3, args=args, stop_s=30) as (proc, url):
        wait_for(lambda: len(replica_pids(proc.pid)) == 1 and running(url) == 1, 120, "one generator replica")

        async def go():
            clients = [await Client(url).start(), await Client(url).start()]  # two sessions on one replica
            try:
                assert clients[0].ready["replica"] == clients[1].ready["replica"]
                await until(lambda: running(url) == 2, 120, "a second replica for the second session")
                await asyncio.sleep(1)  # the front end's router hears of it
                clients.append(await Client(url).start())
                assert clients[2].ready["replica"] != clients[0].ready["replica"]  # the new one has the fewest
                await until(lambda: all(c.frames >= 25 for c in clients), 60, "every session streams")
            finally:
                for c in clients:
                    await c.close()

        asyncio.run(go())


def test_serve_ray_options_are_checked():
    from click.testing import CliRunner

    from server.cli import main  # sonic_rt's command group, with serve added

    runner = CliRunner()
    assert "--ray-address goes with --ray" in runner.invoke(main, ["serve", "--dev", "--ray-address", "auto"]).output
    assert "1 <= MIN <= MAX" in runner.invoke(main, ["serve", "--dev", "--ray", "--replicas", "3:1"]).output
    assert "not MIN:MAX" in runner.invoke(main, ["serve", "--dev", "--ray", "--replicas", "x"]).output


def test_serve_joins_a_running_cluster(tmp_path):
    """``--ray-address``: the replicas are the running cluster's (started by ``ray start``, as on
    the machines of a real deployment), and leaving takes only the deployment down, not the cluster."""
    import shutil
    import subprocess
    import sys

    from tests.server.harness import free_port

    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray_cli is None:
        pytest.skip("the ray command is not installed")
    port = free_port()
    with open(tmp_path / "ray.log", "wb") as log:
        head = subprocess.Popen([ray_cli, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                                 "--include-dashboard=false", "--disable-usage-stats"],
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        args = ("--ray", "--ray-address", f"127.0.0.1:{port}", "--replicas", "1", "--replica-cpus", "0.5")
        # ray start turns token authentication on (its token in ~/.ray/auth_token); a process joining
        # by explicit address uses it only when told to, as Ray documents
        joined = serve(tmp_path / "audit.db", tmp_path / "server.log", max_sessions=2, args=args, stop_s=30,
                       env={"RAY_AUTH_MODE": "token"})  # fmt: skip
        with joined as (_, url):
            wait_for(lambda: running(url) == 1, 120, "the replica on the cluster")

            async def go():
                client = await Client(url).start()
                try:
                    await until(lambda: client.frames >= 25, 60, "the session streams")
                    assert not client.errors and client.ready["replica"]
                finally:
                    await client.close()

            asyncio.run(go())
        assert head.poll() is None  # the cluster outlives the server that joined it
    finally:
        head.terminate()
        head.wait(timeout=60)
