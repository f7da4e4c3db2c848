"""The server's audit records: enrolments with their consent, each session's start (before it is
acknowledged) and its one end, and a crashed server's sessions ended when it starts again."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal

import httpx
import numpy as np
import pytest
import websockets
from click.testing import CliRunner

from server.client import StreamClient
from sonic_rt.cli import main
from sonic_rt.provenance.audit import ABNORMAL, CONSENT_ATTESTATION, SAMPLE_CONSENT, AuditLog
from tests.conftest import png_bytes
from tests.server.conftest import run
from tests.server.harness import ended, frames, serve, session


def test_a_websocket_session_is_on_record_before_ready_and_its_stop_after(server):
    log = server.state.audit.log

    async def go():
        async with StreamClient(server.ws) as client:
            ready = await client.start(params={"dynamic_scale": 1.3})
            at_ready = session(log, ready["session"])
            await frames(client, 10)
            await client.stop()
            async for item in client:
                if isinstance(item, dict) and item["type"] == "stopped":
                    return ready, at_ready, item, session(log, ready["session"])
        raise AssertionError("no stopped event")

    ready, at_ready, stopped, after = run(go())
    assert at_ready is not None and at_ready.ended is None  # the start was on disk before ready was sent
    assert (at_ready.transport, at_ready.requester, at_ready.client) == ("websocket", "dev", "127.0.0.1")
    assert at_ready.consent == SAMPLE_CONSENT and at_ready.portrait.startswith("sample:astronaut")
    params = at_ready.params
    assert params["dynamic_scale"] == 1.3 and params["fps"] == 25 and params["block_frames"] == 2
    assert 0 <= at_ready.watermark < 2**32 and log.find_watermark(at_ready.watermark).id == ready["session"]
    assert (after.end_reason, after.frames) == ("stopped", stopped["frames"]) and stopped["frames"] >= 10
    assert after.seconds == pytest.approx(stopped["frames"] / 25)
    assert log.verify().ok


def test_a_client_that_vanishes_is_ended_disconnected(server, sentence):
    log = server.state.audit.log

    async def go():
        ws = await websockets.connect(server.ws)
        await ws.send('{"type": "start"}')
        ready = await asyncio.wait_for(ws.recv(), 30)
        await ws.send(np.round(sentence[:3200] * 32767).astype("<i2").tobytes())
        ws.transport.abort()  # gone without a close frame
        return await ended(log, json.loads(ready)["session"])

    summary = run(go())
    assert summary.end_reason == "disconnected" and summary.frames is not None


def test_an_upload_is_recorded_with_its_consent(server, astronaut):
    image = png_bytes(astronaut[:, ::-1].copy())  # mirrored: an image of its own, so its enrolment is this test's
    r = httpx.post(f"{server.http}/v1/portraits", files={"image": ("a.png", image)}, data={"consent": "true"},
                   timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    records = server.state.audit.log.records()
    records = [x for x in records if x.kind == "portrait" and x.body["portrait"] == r.json()["id"]]
    assert len(records) == 1
    assert records[0].body == {
        "portrait": r.json()["id"], "portrait_sha256": hashlib.sha256(image).hexdigest(),
        "consent": CONSENT_ATTESTATION, "requester": "dev", "client": "127.0.0.1",
    }  # fmt: skip


def test_renders_are_recorded_completed_or_with_their_error(server):
    ok = httpx.post(f"{server.http}/v1/renders", data={"text": "Hi.", "params": '{"min_resolution": 128}'}, timeout=120)
    bad = httpx.post(f"{server.http}/v1/renders", files={"audio": ("a.wav", b"RIFF....junk")}, timeout=60)
    assert ok.status_code == 200 and bad.json()["error"]["code"] == "unreadable_audio"
    failed, done = [s for s in server.state.audit.log.sessions(limit=10) if s.transport == "render"][:2]
    assert (done.end_reason, done.frames) == ("completed", int(ok.headers["X-Frames"]))
    assert done.seconds == pytest.approx(float(ok.headers["X-Seconds"]), abs=1e-3)
    assert done.params["min_resolution"] == 128 and done.params["crf"] == 20 and done.consent == SAMPLE_CONSENT
    assert (failed.end_reason, failed.frames) == ("error: unreadable_audio", 0)


def open_session(url: str) -> str:
    async def go():
        async with StreamClient(url) as client:
            ready = await client.start()
            await frames(client, 10)
            return ready["session"]

    return run(go())


def test_a_killed_servers_sessions_are_ended_abnormal_when_it_starts_again(tmp_path):
    db, out = tmp_path / "audit.db", tmp_path / "server.log"
    with serve(db, out) as (proc, url):

        async def live_then_kill():
            async with StreamClient(url) as client:
                ready = await client.start()
                await frames(client, 10)
                os.kill(proc.pid, signal.SIGKILL)  # while the session streams
                return ready["session"]

        killed = run(live_then_kill())
        assert proc.wait(timeout=30) == -signal.SIGKILL
    verified = CliRunner().invoke(main, ["audit", "verify", "--db", str(db)])
    assert verified.exit_code == 0 and verified.output.startswith("OK: "), verified.output  # nothing half-written
    with AuditLog(db) as log:
        assert session(log, killed).ended is None and [r.kind for r in log.records()][-1] == "session_start"

    with serve(db, out) as (proc, url):
        with AuditLog(db) as log:
            lost = session(log, killed)
            assert (lost.end_reason, lost.frames, lost.seconds) == (ABNORMAL, None, None)
            assert log.records()[-1].kind == "server_start" and log.records()[-1].body["recovered"] == [killed]
            assert log.verify().ok

        async def live_then_stop():
            async with StreamClient(url) as client:
                ready = await client.start()
                await frames(client, 10)
                proc.send_signal(signal.SIGTERM)  # a clean shutdown while the session streams
                with contextlib.suppress(websockets.ConnectionClosed):
                    async for _ in client:
                        pass
                return ready["session"]

        stopped = run(live_then_stop())
        assert proc.wait(timeout=60) == -signal.SIGTERM  # uvicorn shuts down, then dies of the signal it caught
    with AuditLog(db) as log:
        assert session(log, stopped).end_reason == "server_stopped" and session(log, stopped).frames >= 10
        kinds = [r.kind for r in log.records()]
        assert kinds.count("server_start") == 2 and kinds[-1] == "server_stop"
        assert log.verify().ok


def test_a_keyed_server_counts_the_minutes_its_log_has_for_today(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from server.audit import ServerAudit
    from server.keys import KeyStore
    from server.metrics import Metrics
    from server.state import AppState, Settings

    KeyStore(tmp_path / "keys.db").add("carol", None, 10)
    with AuditLog(tmp_path / "audit.db") as log:
        for seconds in (30.0, 12.5):
            with log.session(os.urandom(8).hex(), transport="websocket", requester="carol", client="127.0.0.1",
                             portrait="sample:astronaut", portrait_sha256=None, consent=SAMPLE_CONSENT, params={},
                             record=False) as opened:  # fmt: skip
                opened.done(round(seconds * 25), seconds)
    settings = Settings(keys_db=tmp_path / "keys.db", audit_db=tmp_path / "audit.db")
    with ThreadPoolExecutor(1) as executor:
        audit = ServerAudit(settings.audit_db, executor)
        state = AppState(settings, None, None, None, executor, Metrics(), audit)
        assert state.access.used_today("carol") == pytest.approx(42.5)
        audit.close()
