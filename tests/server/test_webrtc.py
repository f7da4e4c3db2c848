"""WebRTC end to end with an aiortc peer on loopback: a microphone in, a talking face and its speech out."""

from __future__ import annotations

import asyncio
import fractions
import io
import json
import time

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack

from sonic_rt.provenance.watermark import detect
from tests.server.conftest import run
from tests.server.harness import offer_peer


class Microphone(MediaStreamTrack):
    """What a browser sends: 48 kHz stereo s16, 20 ms a frame, in real time; then silence."""

    kind = "audio"

    def __init__(self, speech16k: np.ndarray) -> None:
        super().__init__()
        stereo = np.repeat(np.repeat(speech16k, 3)[:, None], 2, axis=1)
        self.pcm = np.round(stereo * 32767).astype(np.int16)
        self.sent = 0
        self.t0 = None

    async def recv(self) -> av.AudioFrame:
        self.t0 = self.t0 or time.monotonic()
        await asyncio.sleep(max(0.0, self.t0 + self.sent * 0.02 - time.monotonic()))
        chunk = self.pcm[self.sent * 960 : (self.sent + 1) * 960]
        chunk = np.concatenate([chunk, np.zeros((960 - len(chunk), 2), np.int16)])
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.sent * 960, fractions.Fraction(1, 48000)
        self.sent += 1
        return frame


def test_microphone_in_face_and_speech_out(server, sentence):
    async def go():
        peer = await offer_peer(server.http, Microphone(np.concatenate([sentence, np.zeros(16000, np.float32)])),
                                record=True)  # fmt: skip
        assert peer.response.status_code == 200, peer.response.text
        pc, channel, events = peer.pc, peer.channel, peer.events

        async def frames(kind, n):
            track = await peer.track(kind)
            return [await track.recv() for _ in range(n)]

        video, sound = await asyncio.gather(frames("video", 75), frames("audio", 150))  # 3 s each
        while not any(e["type"] == "speech_start" for e in events):
            await asyncio.sleep(0.05)
        channel.send(json.dumps({"type": "interrupt"}))
        channel.send(json.dumps({"type": "dance"}))
        channel.send(json.dumps({"type": "params", "params": {"motion_scale": 1.5}}))
        while len([e for e in events if e["type"] in ("interrupted", "error", "params")]) < 3:
            await asyncio.sleep(0.05)
        used = server.state.slots.used
        await pc.close()
        for _ in range(100):
            if server.state.slots.used < used:
                break
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient() as http:
            recording = await http.get(server.http + events[0]["recording"])
        return video, sound, events, used - server.state.slots.used, recording

    video, sound, events, freed, recording = run(go())
    assert recording.headers["x-recording-complete"] == "true"
    with av.open(io.BytesIO(recording.content)) as c:
        assert sum(1 for _ in c.decode(video=0)) >= 75 and c.streams.audio
    image = video[-1].to_ndarray(format="rgb24")
    assert image.shape == (512, 512, 3) and image.std() > 20
    pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in sound]).astype(np.float32) / 32768
    assert np.abs(pcm).max() > 0.1  # the microphone's speech came back as the face's audio
    kinds = [e["type"] for e in events]
    assert kinds[0] == "ready" and "speech_start" in kinds and "interrupted" in kinds and "stats" in kinds
    assert next(e for e in events if e["type"] == "params")["params"] == {"dynamic_scale": 1.0, "motion_scale": 1.5}
    assert next(e for e in events if e["type"] == "error")["code"] == "unknown_type"
    assert freed == 1  # closing the peer ended the session
    record = next(s for s in server.state.audit.log.sessions(limit=50) if s.id == events[0]["session"])
    assert (record.transport, record.end_reason) == ("webrtc", "disconnected")
    assert record.frames >= 75 and record.client == "127.0.0.1"
    # the frames that came over VP8, and the recording, carry the session's watermark from its record
    assert events[0]["watermark"] == f"{record.watermark:08x}" and events[0]["label"] is False
    assert detect([f.to_ndarray(format="rgb24") for f in video]).payload == record.watermark
    with av.open(io.BytesIO(recording.content)) as c:
        assert detect(f.to_ndarray(format="rgb24") for f in c.decode(video=0)).payload == record.watermark


def test_busy_and_bad_offers_are_refused(server):
    r = httpx.post(f"{server.http}/v1/webrtc/offer", json={"sdp": "v=0 nonsense", "type": "offer"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_offer"
    assert server.state.slots.used == 0
    newest = server.state.audit.log.sessions(limit=1)[0]
    assert (newest.transport, newest.end_reason) == ("webrtc", "error: bad_offer")
    r = httpx.post(f"{server.http}/v1/webrtc/offer", json={"sdp": "x", "portrait": "nobody"}, timeout=30)
    assert r.status_code == 404
    for kind in ("answer", "pranswer", "rollback"):  # an answer was a 500 (aiortc's InvalidStateError)
        r = httpx.post(f"{server.http}/v1/webrtc/offer", json={"sdp": "v=0", "type": kind}, timeout=30)
        assert r.status_code == 422 and r.json()["error"]["code"] == "bad_params", r.text
    assert server.state.slots.used == 0


def test_speech_waiting_before_the_connection_or_after_a_burst_is_dropped_so_the_face_is_not_late():
    from server.webrtc import AUDIO_FRAME, MAX_QUEUED, START_QUEUED, SpeechTrack

    track = SpeechTrack()
    frames = [np.full(640, i / 100, np.float32) for i in range(25)]  # 1 s of frames before the first recv
    for f in frames:
        track.feed(f)
    assert track.queued == MAX_QUEUED == 2 * 640 and track.dropped == 23 * 640

    async def recv():
        return (await track.recv()).to_ndarray().reshape(-1)

    pcm = run(recv())
    assert len(pcm) == AUDIO_FRAME and pcm[0] == round(frames[-1][0] * 32767)  # only the newest frame's audio
    assert track.queued == 0 and track.dropped == 24 * 640 and START_QUEUED == 640
    track.feed(frames[1])  # the rest of the newest frame, this one, then silence
    assert [run(recv())[0] for _ in range(4)] == [round(0.24 * 32767), 328, 328, 0]


def test_a_session_that_fails_while_streaming_ends_saying_so(server, sentence, monkeypatch):
    """An exception in the frame pump ends the session with a fatal ``internal`` error on the data
    channel (before, the pump alone ended and the face froze with the connection still up)."""
    from tests.server.test_ws import fail_after

    doomed = fail_after(monkeypatch, 10)

    async def go():
        def doom(event):
            if event["type"] == "ready":
                doomed.append(int(event["watermark"], 16))

        peer = await offer_peer(server.http, Microphone(sentence), on_event=doom)
        pc, events, r = peer.pc, peer.events, peer.response
        try:
            for _ in range(200):
                if any(e["type"] == "error" for e in events) and server.state.slots.used == 0:
                    break
                await asyncio.sleep(0.05)
        finally:
            await pc.close()
        return r.json()["session"], events

    session_id, events = run(go())
    assert [(e["code"], e["fatal"]) for e in events if e["type"] == "error"] == [("internal", True)]
    assert server.state.slots.used == 0
    ended = next(s for s in server.state.audit.log.sessions(limit=20) if s.id == session_id)
    assert ended.end_reason == "error: internal" and ended.frames >= 10
