"""The REST side on loopback: portraits, renders, health, metrics, the API schema."""

from __future__ import annotations

import av
import cv2
import httpx
import numpy as np

from tests.conftest import png_bytes

CONSENT = {"consent": "true"}


def enrol(server, image: bytes, **form) -> httpx.Response:
    return httpx.post(f"{server.http}/v1/portraits", files={"image": ("a.png", image)}, data={**CONSENT, **form},
                      timeout=60)  # fmt: skip


def test_enrol_a_portrait_once_and_use_its_id(server, astronaut):
    image = png_bytes(astronaut)
    first, again = enrol(server, image).json(), enrol(server, image).json()
    assert first["id"] == again["id"] and first["size"] == 512 and first["faces"] == 1 and first["consent"] is True
    small = enrol(server, image, min_resolution="256").json()
    assert small["id"] != first["id"] and small["size"] == 256
    assert server.state.portraits.get(first["id"]).out_size == 512
    crop = httpx.get(f"{server.http}{first['image']}")
    assert crop.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(crop.content, np.uint8), cv2.IMREAD_COLOR).shape == (512, 512, 3)


def test_an_upload_needs_consent(server, astronaut):
    for form in ({}, {"consent": "false"}):
        r = httpx.post(f"{server.http}/v1/portraits", files={"image": ("a.png", png_bytes(astronaut))}, data=form)
        assert r.status_code == 403 and r.json()["error"]["code"] == "consent_required"
    assert httpx.post(f"{server.http}/v1/portraits", data={"sample": "sample:astronaut"}, timeout=60).status_code == 200


def test_a_yes_or_no_field_is_true_or_false_spelled_out(server, astronaut):
    """Multipart sends text: consent and label are read from ``true``/``false`` (any case) only, not
    from what a lax reading would also take for a boolean (1, 0, on, no, t)."""
    for spelled in ("1", "on", "yes", "t", "0", "no"):
        r = enrol(server, png_bytes(astronaut), consent=spelled)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "bad_params"), (spelled, r.text)
        assert "consent" in r.json()["error"]["message"]
        r = httpx.post(f"{server.http}/v1/renders", data={"text": "hi", "label": spelled}, timeout=60)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "bad_params"), (spelled, r.text)
    assert enrol(server, png_bytes(astronaut), consent="TRUE").status_code == 200


def test_samples_are_listed_with_their_photos(server):
    samples = httpx.get(f"{server.http}/v1/samples").json()["samples"]
    assert [s["id"] for s in samples] == ["sample:astronaut"] and "NASA" in samples[0]["title"]
    photo = httpx.get(f"{server.http}{samples[0]['image']}")
    assert cv2.imdecode(np.frombuffer(photo.content, np.uint8), cv2.IMREAD_COLOR).shape == (512, 512, 3)
    r = httpx.get(f"{server.http}/v1/samples/nobody.jpg")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_portrait"
    assert httpx.get(f"{server.http}/v1/portraits/nobody/image.jpg").status_code == 404


def test_the_browser_client_is_served_at_the_root(server):
    page = httpx.get(f"{server.http}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>" in page.text and "sonic-rt" in page.text


def test_portrait_errors_have_codes(server):
    blank = png_bytes(np.full((256, 256, 3), 200, np.uint8))
    r = enrol(server, blank)
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_face"
    r = enrol(server, b"not an image")
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
    # were 500: a seed numpy or torch refuses, fractional counts, a flag "no" taken for true
    for params in ('{"seed": -1}', '{"seed": 1.5}', '{"inference_steps": 2.5}', '{"block_frames": 2.5}',
                   '{"pad": "no", "duration": 1}', "[" * 100_000):  # fmt: skip
        r = httpx.post(f"{server.http}/v1/renders", data={"text": "hi", "params": params}, timeout=60)
        assert r.status_code == 422 and r.json()["error"]["code"] == "bad_params", (params, r.text)


def test_requests_refused_by_their_types_or_by_http_get_the_error_body(server):
    """What FastAPI and Starlette refuse themselves comes in the same body as every other error:
    a field's declared type or range is bad_params (not FastAPI's {"detail": [...]})."""
    r = httpx.post(f"{server.http}/v1/renders", data={"text": "hi", "crf": "99"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_params" and "crf" in r.json()["error"]["message"]
    offer = f"{server.http}/v1/webrtc/offer"
    r = httpx.post(offer, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_params"
    r = httpx.post(offer, content=b"{\xc3\x28}", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    r = httpx.post(offer, content=b'{"sdp": "\\ud800"}', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_params"
    r = httpx.get(f"{server.http}/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.delete(f"{server.http}/v1/samples")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_health_metrics_and_schema(server):
    health = httpx.get(f"{server.http}/healthz").json()
    assert health["status"] == "ok" and health["capacity"] == 2
    metrics = httpx.get(f"{server.http}/metrics").text
    assert "sonic_rt_sessions_active" in metrics and "sonic_rt_frames_total" in metrics
    schema = httpx.get(f"{server.http}/openapi.json").json()
    assert {"/v1/portraits", "/v1/renders", "/healthz"} <= set(schema["paths"])
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for operations in schema["paths"].values():  # every route declares the error body, none FastAPI's own
        for operation in operations.values():
            assert operation["responses"]["4XX"]["content"]["application/json"]["schema"] == error
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert httpx.get(f"{server.http}/docs").status_code == 200


def test_offers_are_refused_when_the_live_places_are_full_and_renders_are_not(server):
    """A render runs in a job process at the lowest priority, so it does not take a live session's
    place (its own queue bounds it: tests/server/workers/test_jobs.py)."""
    slots = server.state.slots
    taken = [slots.try_acquire() for _ in range(slots.capacity - slots.used)]
    try:
        r = httpx.post(f"{server.http}/v1/webrtc/offer", json={"sdp": "x"}, timeout=60)
        assert r.status_code == 503 and r.json()["error"]["code"] == "busy"
        r = httpx.post(f"{server.http}/v1/renders", data={"text": "hi"}, timeout=120)
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    finally:
        for _ in taken:
            slots.release()
