"""Faults: clients that vanish mid-stream, a client too slow to take what it is sent, and the server
killed with SIGKILL mid-session. Whatever happens, a session's place is given back, its audit
record is ended exactly once and says how, the log verifies, and the other sessions go on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import websockets
from click.testing import CliRunner

from server.client import StreamClient
from sonic_rt.cli import main
from sonic_rt.provenance.audit import ABNORMAL, SESSION_END, SESSION_START, AuditLog
from tests.conftest import REPO, write_wav
from tests.server.conftest import run
from tests.server.harness import frames, serve
from tests.stress.streams import FPS, Received, Witness, read_until, tallied
from tests.stress.tally import scaled

IN_FLIGHT_FRAMES = 10 * FPS  # frames between the server and a slow client: the sockets' buffers, never more


async def settled(server, known: set[str], used: int, timeout: float = 20, quiet: float = 0.5) -> list:
    """The sessions started since ``known``, once all have ended and the places in use have been back
    at ``used`` for ``quiet`` seconds (a start the server reads after the client vanished comes
    late); what is there at ``timeout`` if that never happens."""
    log = server.state.audit.log
    deadline = time.monotonic() + timeout
    calm_since = None
    while True:
        new = [s for s in log.sessions(limit=1000) if s.id not in known]
        calm = all(s.ended is not None for s in new) and server.state.slots.used == used
        calm_since = (calm_since or time.monotonic()) if calm else None
        if (calm_since is not None and time.monotonic() - calm_since >= quiet) or time.monotonic() > deadline:
            return new
        await asyncio.sleep(0.05)


# -- clients that vanish --------------------------------------------------------------------------


async def vanish(url: str, how: str, portrait: str, speech: np.ndarray) -> None:
    """Start a session (or not), then drop the TCP connection without a close frame, ``how``."""
    ws = await websockets.connect(url, compression=None)
    if how != "before start":
        await ws.send(json.dumps({"type": "start", "portrait": portrait}))
    if how not in ("before start", "right after start"):
        ready = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert ready["type"] == "ready", ready
    pcm = np.round(speech * 32767).astype("<i2")
    if how == "mid-stream":
        for i in range(25):  # 0.5 s of audio in real time, reading what comes
            await ws.send(pcm[i * 320 : (i + 1) * 320].tobytes())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.02)
    elif how == "mid-send of a large message":
        ws.protocol.send_binary(np.tile(pcm, 3)[:100_000].tobytes())  # 200 KB, half of it written
        data = b"".join(ws.protocol.data_to_send())
        ws.transport.write(data[: len(data) // 2])
        await asyncio.sleep(0.1)
    elif how == "during say":
        text = "This sentence is long enough to be synthesised for a while. " * 8
        await ws.send(json.dumps({"type": "say", "text": text}))
        await asyncio.sleep(0.05)
    ws.transport.abort()


VANISHING = ("before start", "right after start", "mid-stream", "mid-send of a large message", "during say")


def test_clients_that_vanish_free_their_place_and_end_disconnected(stress_server, portrait, sentence, monkeypatch):
    """WebSocket clients whose connection drops without a close frame — before ``start``, right after
    it (before ``ready``), mid-stream, half-way through sending a 200 KB message, while the server
    synthesises their ``say`` — and a WebRTC peer whose process is SIGKILLed: each session's place
    comes back and its audit record ends ``disconnected``; another session streams on throughout.

    The server learns that a WebRTC peer vanished without a word from ICE consent freshness (RFC
    7675: aioice checks every 5 s and gives up after 6 failures); here it checks every 0.5 s."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.5)

    async def go(cases):
        async with Witness(stress_server.ws, sentence, portrait=portrait) as witness:
            used = stress_server.state.slots.used
            for _ in range(scaled(2)):
                for how in VANISHING:
                    known = {s.id for s in stress_server.state.audit.log.sessions(limit=1000)}
                    await vanish(stress_server.ws, how, portrait, sentence)
                    new = await settled(stress_server, known, used)
                    problems = [f"{how}: session {s.id[:8]} ended {s.end_reason!r}" for s in new
                                if s.end_reason != "disconnected"]  # fmt: skip
                    if how not in ("before start", "right after start") and len(new) != 1:
                        problems.append(f"{how}: {len(new)} sessions on record instead of 1")
                    if how == "before start" and new:
                        problems.append(f"{how}: a session was recorded without a start")
                    if stress_server.state.slots.used != used:
                        problems.append(f"{how}: {stress_server.state.slots.used - used} places still taken")
                    cases.check(problems)
            cases.check(await vanished_webrtc_peer(stress_server, portrait, used))
            cases.check(witness.problems())

    with tallied("faults: vanishing clients") as cases:
        run(go(cases), timeout=180)


async def vanished_webrtc_peer(server, portrait: str, used: int) -> list[str]:
    """A WebRTC peer in its own process, SIGKILLed once the face is coming."""
    peer = subprocess.Popen([sys.executable, "-m", "tests.stress.peer", server.http, portrait], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        ready, _, _ = await asyncio.to_thread(select.select, [peer.stdout], [], [], 60)
        line = peer.stdout.readline() if ready else ""
        if not line.startswith("session "):
            return [f"webrtc peer: never got the face ({line!r})"]
        session_id = line.split()[1]
        peer.kill()
    finally:
        peer.kill()
        peer.wait(timeout=30)
    log = server.state.audit.log
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = next((s for s in log.sessions(limit=1000) if s.id == session_id), None)
        if found is not None and found.ended is not None and server.state.slots.used == used:
            return [] if found.end_reason == "disconnected" else [f"webrtc peer: ended {found.end_reason!r}"]
        await asyncio.sleep(0.1)
    return ["webrtc peer: its session was still open 30 s after the peer was killed"]


# -- a slow consumer ------------------------------------------------------------------------------


def test_a_client_that_stops_reading_is_ended_and_a_slow_one_gets_frames_at_its_pace(stress_server, portrait,
                                                                                       sentence):  # fmt: skip
    """A client that stops reading (but keeps its connection) fills the sockets' buffers; frames
    then wait for the socket one at a time — nothing piles up in the server — and once the client
    has taken nothing for 5 s its session ends (``error: slow_consumer``) and its place comes back.
    A client reading at a quarter of the pace gets frames at its pace with no more in flight than
    the buffers hold, and ends normally. Another session keeps its 25 fps throughout."""

    async def stuck(cases):
        ws = await websockets.connect(stress_server.ws, max_queue=2, ping_interval=None, compression=None)
        try:
            await ws.send(json.dumps({"type": "start", "video": {"quality": 100}}))  # 512 px: big frames
            ready = json.loads(await asyncio.wait_for(ws.recv(), 30))
            log = stress_server.state.audit.log
            deadline = time.monotonic() + 60
            while (found := next((s for s in log.sessions(limit=1000) if s.id == ready["session"]), None)) is None \
                    or found.ended is None:  # fmt: skip
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            problems = [] if found.end_reason == "error: slow_consumer" else [
                f"stopped reading: the session ended {found.end_reason!r} (None: still open after 60 s)"]  # fmt: skip
            cases.check(problems)
        finally:
            ws.transport.abort()

    async def slow(cases):
        async with StreamClient(stress_server.ws) as client:
            await client.start(video={"quality": 100})
            got = Received()
            deadline = time.monotonic() + 8.0
            while time.monotonic() < deadline:  # 2 messages a frame: 12.5 a second is a quarter of the pace
                got.add(await asyncio.wait_for(client.ws.recv(), 10))
                await asyncio.sleep(0.08)
            await client.stop()
            drained = await read_until(client, lambda g: any(e["type"] == "stopped" for e in g.events), 60)
            stopped = next((e for e in drained.events if e["type"] == "stopped"), None)
            problems = [] if stopped else ["slow reader: no stopped event"]
            if stopped:
                in_flight = len(drained.video)
                cases.detail.update(slow_reader_frames=len(got.video), slow_reader_in_flight=in_flight)
                if in_flight > IN_FLIGHT_FRAMES:
                    problems.append(f"slow reader: {in_flight} frames were in flight (more than {IN_FLIGHT_FRAMES})")
                if not 0 <= stopped["frames"] - len(got.video) - in_flight <= 1:
                    problems.append(f"slow reader: {stopped['frames']} frames made, "
                                    f"{len(got.video) + in_flight} received")  # fmt: skip
                if len(got.video) < 0.1 * FPS * 8:
                    problems.append(f"slow reader: only {len(got.video)} frames in 8 s")
            cases.check(problems)
            return got

    async def go(cases):
        async with Witness(stress_server.ws, sentence, portrait=portrait) as witness:
            used = stress_server.state.slots.used
            await asyncio.gather(stuck(cases), slow(cases))
            for _ in range(100):
                if stress_server.state.slots.used == used:
                    break
                await asyncio.sleep(0.1)
            cases.check([] if stress_server.state.slots.used == used else ["the slow clients' places were not freed"])
            cases.check(witness.problems())
            cases.detail["other_session_stalls"] = witness.stalls()

    with tallied("faults: slow consumer") as cases:
        run(go(cases), timeout=120)


# -- SIGKILL --------------------------------------------------------------------------------------


def records_of(db) -> list[tuple[int, str, str | None, str]]:
    """``(seq, kind, session, mac)`` of every record in the log at ``db``."""
    with AuditLog(db) as log:
        return [(r.seq, r.kind, r.session, r.mac) for r in log.records()]


def rendering(db) -> bool:
    with AuditLog(db) as log:
        return any(s.transport == "render" and s.ended is None for s in log.sessions(limit=100))


def verify_problems(db, when: str) -> list[str]:
    verified = CliRunner().invoke(main, ["audit", "verify", "--db", str(db)])
    return [] if verified.exit_code == 0 and verified.output.startswith("OK: ") else [
        f"{when}: audit verify: {verified.output.strip()[-300:]}"]  # fmt: skip


async def busy_then_kill(proc, url: str, db, speech_wav: bytes, moment: str) -> tuple[set[str], list]:
    """Two WebSocket sessions streaming, a render in flight and a third session starting; SIGKILL at
    ``moment``. Returns the sessions the server acknowledged (``ready``) and the records on disk
    just before the kill."""
    http = url.replace("ws://", "http://").removesuffix("/v1/stream")
    speech = np.frombuffer(speech_wav[44:], "<i2").astype(np.float32) / 32768
    async with StreamClient(url) as a, StreamClient(url) as b, httpx.AsyncClient(base_url=http) as client:
        acknowledged = {(await a.start())["session"], (await b.start())["session"]}
        tasks = [asyncio.create_task(c.stream_audio(speech)) for c in (a, b)]
        tasks.append(asyncio.create_task(client.post("/v1/renders", files={"audio": ("s.wav", speech_wav)},
                                                     timeout=120)))  # fmt: skip
        if moment == "mid-stream, during a render":
            await asyncio.gather(frames(a, FPS), frames(b, FPS))
            deadline = time.monotonic() + 30
            while not rendering(db) and time.monotonic() < deadline:  # the render's start is on disk
                await asyncio.sleep(0.05)
        c = await websockets.connect(url)
        await c.send(json.dumps({"type": "start"}))  # killed before (or as) it is ready
        deadline = time.monotonic() + 10
        while moment == "before ready" and time.monotonic() < deadline:  # its start on disk, ready not yet sent
            with AuditLog(db) as log:
                if any(s.id not in acknowledged and s.transport == "websocket" for s in log.sessions(limit=10)):
                    break
            await asyncio.sleep(0.005)
        before = records_of(db)
        os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(asyncio.TimeoutError, websockets.ConnectionClosed):
            message = json.loads(await asyncio.wait_for(c.recv(), 2))
            if message.get("type") == "ready":
                acknowledged.add(message["session"])
        c.transport.abort()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return acknowledged, before


def test_a_server_killed_mid_session_loses_no_record_and_ends_them_abnormal_on_restart(tmp_path, sentence):
    """``python -m server serve`` with two WebSocket sessions streaming, a render in flight and a
    third session starting, SIGKILLed (before ``ready``; mid-stream during the render), ``scaled(2)``
    times on one log. After each kill the log verifies and holds every record it held just before
    (and every session a client was told was ``ready``); the next start ends each session left open
    ``abnormal``, once, so every session_start has one session_end; and the restarted server serves.
    Then a clean stop (SIGTERM) with a client that stopped reading: the server still stops."""
    db, out = tmp_path / "audit.db", tmp_path / "server.log"
    speech_wav = write_wav(tmp_path / "speech.wav", np.tile(np.concatenate([sentence, np.zeros(8000, np.float32)]),
                                                            6)).read_bytes()  # fmt: skip
    moments = ("before ready", "mid-stream, during a render")
    with tallied("faults: SIGKILL") as cases:
        acknowledged, before, open_at_kill = set(), [], set()
        for i in range(scaled(2) + 1):
            with serve(db, out, max_sessions=4) as (proc, url):
                if i:  # the previous round's kill, seen from this start
                    cases.check(restart_problems(db, before, acknowledged, open_at_kill))
                    cases.check(serves_problems(url))
                if i == scaled(2):
                    break
                acknowledged, before = run(busy_then_kill(proc, url, db, speech_wav, moments[i % len(moments)]), 120)
                if proc.wait(timeout=30) != -signal.SIGKILL:
                    cases.check([f"the server exited {proc.returncode} instead of being killed"])
            after = records_of(db)
            problems = verify_problems(db, f"after kill {i + 1}")
            if not set(before) <= set(after):
                problems.append(f"after kill {i + 1}: records lost: {sorted(set(before) - set(after))[:5]}")
            started = {r[2] for r in after if r[1] == SESSION_START}
            if not acknowledged <= started:
                problems.append(f"after kill {i + 1}: sessions told ready but not on record: {acknowledged - started}")
            open_at_kill = started - {r[2] for r in after if r[1] == SESSION_END}
            with AuditLog(db) as log:
                killed = sorted(s.transport for s in log.sessions(limit=10_000) if s.id in open_at_kill)
            cases.detail.setdefault("open_at_kill", []).append(killed)
            cases.check(problems)
    with tallied("faults: slow consumer") as cases:
        cases.check(stop_with_a_stuck_client(db, out))


def restart_problems(db, before: list, acknowledged: set[str], open_at_kill: set[str]) -> list[str]:
    """What a start after a kill must have done: end the sessions left open, once each, abnormal."""
    with AuditLog(db) as log:
        records = log.records()
        summaries = {s.id: s for s in log.sessions(limit=10_000)}
        ok = log.verify().ok
    problems = [] if ok else ["after restart: the log does not verify"]
    starts = [r.session for r in records if r.kind == SESSION_START]
    ends = [r.session for r in records if r.kind == SESSION_END]
    if sorted(starts) != sorted(ends):
        problems.append(f"after restart: {len(starts)} session starts, {len(ends)} ends")
    wrong = {s for s in open_at_kill if summaries[s].end_reason != ABNORMAL}
    if wrong:
        problems.append(f"after restart: left open at the kill but not ended abnormal: {wrong}")
    server_start = next((r for r in reversed(records) if r.kind == "server_start"), None)
    if server_start is None or set(server_start.body["recovered"]) != open_at_kill:
        problems.append(f"after restart: server_start recovered {server_start and server_start.body['recovered']}, "
                        f"open at the kill: {sorted(open_at_kill)}")  # fmt: skip
    if not {(r.seq, r.kind, r.session, r.mac) for r in records} >= set(before):
        problems.append("after restart: records from before the kill are gone")
    return problems


def serves_problems(url: str) -> list[str]:
    async def go():
        async with StreamClient(url) as client:
            await client.start()
            return await frames(client, 10)

    try:
        run(go(), 60)
    except Exception as err:  # any way of not serving is this case's failure
        return [f"the restarted server does not serve a session: {err!r}"]
    return []


def stop_with_a_stuck_client(db, out) -> list[str]:
    """A clean stop while a client that stopped reading holds a connection whose buffers never drain:
    its session ends ``slow_consumer``, and the server stops within its graceful-shutdown limit
    (before, it waited for that connection forever)."""
    from server.cli import GRACEFUL_SHUTDOWN_S

    with serve(db, out) as (proc, url):

        async def go():
            ws = await websockets.connect(url, max_queue=2, ping_interval=None, compression=None)
            try:
                await ws.send(json.dumps({"type": "start", "video": {"quality": 100}}))
                session_id = json.loads(await asyncio.wait_for(ws.recv(), 30))["session"]
                with AuditLog(db) as log:
                    for _ in range(600):
                        found = next(s for s in log.sessions(limit=100) if s.id == session_id)
                        if found.ended is not None:
                            break
                        await asyncio.sleep(0.1)
                proc.send_signal(signal.SIGTERM)
                t0 = time.monotonic()
                while proc.poll() is None and time.monotonic() - t0 < GRACEFUL_SHUTDOWN_S + 20:
                    await asyncio.sleep(0.1)
                return found.end_reason, proc.poll()
            finally:
                ws.transport.abort()

        reason, code = run(go(), 120)
    problems = [] if reason == "error: slow_consumer" else [f"stuck client: its session ended {reason!r}"]
    if code is None:
        problems.append(f"SIGTERM with a stuck client: the server had not stopped after {GRACEFUL_SHUTDOWN_S + 20} s")
    kinds = [r[1] for r in records_of(db)]
    if kinds[-1] != "server_stop":
        problems.append(f"SIGTERM with a stuck client: the log ends with {kinds[-1]}, not server_stop")
    return problems + verify_problems(db, "after the clean stop")
