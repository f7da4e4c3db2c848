"""The REST side on loopback: portraits, renders, health, metrics, the API schema."""

from __future__ import annotations

import av
import httpx
import numpy as np

from tests.conftest import png_bytes


def test_enrol_a_portrait_once_and_use_its_id(server, astronaut):
    image = png_bytes(astronaut)
    first = httpx.post(f"{server.http}/v1/portraits", files={"image": ("a.png", image)}, timeout=60).json()
    again = httpx.post(f"{server.http}/v1/portraits", files={"image": ("a.png", image)}, timeout=60).json()
    assert first["id"] == again["id"] and first["size"] == 512 and first["faces"] == 1
    small = httpx.post(f"{server.http}/v1/portraits", files={"image": ("a.png", image)},
                       data={"min_resolution": "256"}, timeout=60).json()  # fmt: skip
    assert small["id"] != first["id"] and small["size"] == 256
    assert server.state.portraits.get(first["id"]).out_size == 512


def test_portrait_errors_have_codes(server):
    blank = png_bytes(np.full((256, 256, 3), 200, np.uint8))
    r = httpx.post(f"{server.http}/v1/portraits", files={"image": ("blank.png", blank)}, timeout=60)
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_face"
    r = httpx.post(f"{server.http}/v1/portraits", files={"image": ("x.png", b"not an image")}, timeout=60)
    assert r.json()["error"]["code"] == "unreadable_image"
    r = httpx.post(f"{server.http}/v1/portraits", data={"sample": "sample:nobody"}, timeout=60)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_portrait"
    r = httpx.post(f"{server.http}/v1/portraits", data={"sample": "sample:astronaut", "expand_ratio": "5"})
    assert r.json()["error"]["code"] == "bad_params"


def test_render_text_to_mp4(server, tmp_path):
    r = httpx.post(f"{server.http}/v1/renders", data={"text": "Hello there.", "params": '{"fps": 30}'}, timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    out = tmp_path / "r.mp4"
    out.write_bytes(r.content)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert stream.average_rate == 30 and container.streams.audio
    assert frames == int(r.headers["X-Frames"]) > 20


def test_render_errors(server):
    r = httpx.post(f"{server.http}/v1/renders", data={"text": "hi", "params": '{"dynamic_scale": 9}'})
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_params"
    r = httpx.post(f"{server.http}/v1/renders", files={"audio": ("a.wav", b"RIFF....junk")}, timeout=60)
    assert r.json()["error"]["code"] == "unreadable_audio"
    r = httpx.post(f"{server.http}/v1/renders", data={"text": "hi", "portrait": "nobody"})
    assert r.status_code == 404


def test_health_metrics_and_schema(server):
    health = httpx.get(f"{server.http}/healthz").json()
    assert health["status"] == "ok" and health["capacity"] == 2
    metrics = httpx.get(f"{server.http}/metrics").text
    assert "sonic_rt_sessions_active" in metrics and "sonic_rt_frames_total" in metrics
    schema = httpx.get(f"{server.http}/openapi.json").json()
    assert {"/v1/portraits", "/v1/renders", "/healthz"} <= set(schema["paths"])
    assert httpx.get(f"{server.http}/docs").status_code == 200


def test_renders_and_webrtc_offers_are_refused_when_full(server):
    slots = server.state.slots
    taken = [slots.try_acquire() for _ in range(slots.capacity - slots.used)]
    try:
        r = httpx.post(f"{server.http}/v1/renders", data={"text": "hi"}, timeout=60)
        assert r.status_code == 503 and r.json()["error"]["code"] == "busy"
        r = httpx.post(f"{server.http}/v1/webrtc/offer", json={"sdp": "x"}, timeout=60)
        assert r.status_code == 503 and r.json()["error"]["code"] == "busy"
    finally:
        for _ in taken:
            slots.release()
