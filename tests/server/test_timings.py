"""Timings in and visemes out, through the real server on loopback (sessions in worker processes)."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from server import protocol as p
from server.client import StreamClient
from sonic_rt.audio.visemes import NAMES
from tests.conftest import write_wav
from tests.server.conftest import run
from tests.server.test_ws import collect, video


def test_timings_drive_the_mouth_and_the_viseme_stream_follows_them(server, sentence):
    seconds = len(sentence) / 16000
    marks = [{"audio_offset": 0, "viseme_id": 2}, {"audio_offset": 6_000_000, "viseme_id": 21},  # ɑ, then p b m
             {"audio_offset": 14_000_000, "viseme_id": 2}]  # fmt: skip

    async def go():
        async with StreamClient(server.ws) as client:
            await client.start(viseme_events=True, motion_events=True)
            await client.send_timings("azure", [{"audio_offset": 0, "viseme_id": 99}])  # refused: the session goes on
            await client.send_timings("azure", marks, end_ms=seconds * 1000)
            await client.stream_audio(sentence, chunk_ms=20, realtime=False)
            await client.flush()
            end = seconds - 0.1
            media, events = await collect(client, lambda m, e: any(x.source and x.source > end for x in video(m)))
            await client.stop()
            return media, events

    media, events = run(go())
    errors = [e for e in events if e["type"] == "error"]
    assert [(e["code"], e["fatal"]) for e in errors] == [("bad_timings", False)]
    assert "0-21" in errors[0]["message"]
    source = {m.index: m.source for m in video(media)}
    weights = {e["frame"]: e["weights"] for e in events if e["type"] == "visemes"}
    assert set(weights) >= set(source) - {max(source)}  # one event per frame (the last's may follow its frame)
    for w in weights.values():
        assert list(w) == list(NAMES) and sum(w.values()) == pytest.approx(1.0, abs=0.01)
    inside = [k for k, s in source.items() if s is not None and 0.75 <= s < 1.25]
    outside = [k for k, s in source.items() if s is not None and 0.2 <= s < 0.5]
    assert len(inside) >= 10 and len(outside) >= 5
    assert all(weights[k]["PP"] > 0.99 for k in inside) and all(weights[k]["aa"] > 0.99 for k in outside)
    values = {e["frame"]: e["values"] for e in events if e["type"] == "motion"}
    opening = {k: v["jaw_open"] - v["mouth_close"] for k, v in values.items()}
    assert np.mean([opening[k] for k in inside]) < np.mean([opening[k] for k in outside]) - 0.1  # lips closed


def test_timings_that_contradict_the_audio_are_refused_and_nothing_is_lost(server, sentence):
    async def go():
        async with StreamClient(server.ws) as client:
            await client.start()
            await client.send_timings("ipa", [{"phone": "p", "start_ms": 0, "end_ms": 100},
                                              {"phone": "a", "start_ms": 50, "end_ms": 300}])  # overlap  # fmt: skip
            await client.send_timings("ipa", [{"phone": "a", "start_ms": 0, "end_ms": 9000}])  # runs past the audio
            await client.stream_audio(sentence, chunk_ms=20, realtime=False)
            await client.send_timings("ipa", [{"phone": "p", "start_ms": 0, "end_ms": 100}], offset_ms=100)  # too late
            await client.flush()
            end = len(sentence) / 16000 - 0.1
            media, events = await collect(client, lambda m, e: any(x.source and x.source > end for x in video(m)))
            await client.stop()
            return media, events

    media, events = run(go())
    errors = [e["message"] for e in events if e["type"] == "error"]
    assert len(errors) == 3 and all(e["code"] == "bad_timings" for e in events if e["type"] == "error")
    assert "overlap" in errors[0] and "already arrived" in errors[1] and "past the end" in errors[2]
    shown = [m.source for m in video(media) if m.source is not None]
    assert max(shown) > len(sentence) / 16000 - 0.1  # every second of the audio was shown


def test_a_render_takes_the_phonemes_of_its_audio(server, sentence, tmp_path):
    wav = write_wav(tmp_path / "s.wav", sentence).read_bytes()
    n = len(sentence) * 1000 // 16000
    marks = ((0, "a"), (600, "p"), (1400, "a"))
    polly = "\n".join(json.dumps({"time": t, "type": "viseme", "value": v}) for t, v in marks)
    params = {"params": '{"min_resolution": 128}'}
    ok = httpx.post(f"{server.http}/v1/renders", data=params, timeout=120,
                    files={"audio": ("s.wav", wav), "phonemes": ("s.marks", polly.encode())})  # fmt: skip
    assert ok.status_code == 200, ok.text
    assert ok.headers["content-type"] == "video/mp4"
    late = json.dumps({"format": "ipa", "marks": [{"phone": "a", "start_ms": 0, "end_ms": n + 1000}]})
    bad = httpx.post(f"{server.http}/v1/renders", data=params, timeout=120,
                     files={"audio": ("s.wav", wav), "phonemes": ("t.json", late.encode())})  # fmt: skip
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_timings"


def test_the_protocol_message_is_checked_before_it_is_read():
    with pytest.raises(p.ProtocolError) as err:
        p.parse_control(json.dumps({"type": "timings", "format": "ssml", "marks": []}))
    assert err.value.code == "bad_message"
    message = p.parse_control(json.dumps({"type": "timings", "format": "polly", "marks": [], "offset_ms": 20}))
    assert isinstance(message, p.Timings) and message.offset_ms == 20
