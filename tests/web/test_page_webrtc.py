"""The page over WebRTC (its default): the fake microphone's speech in, a talking face out."""

from __future__ import annotations

import io
import re

import av
import httpx
import numpy as np
import pytest

from sonic_rt.provenance.watermark import detect
from tests.web.conftest import PLAYWRIGHT_MISSING
from tests.web.probe import (
    mouth_openings,
    now_ms,
    open_page,
    presented_fps,
    pull_frames,
    record,
    save_frames,
    set_slider,
    speaking,
    spread,
    start_video_probe,
    steady,
)

expect = pytest.importorskip("playwright.sync_api", reason=PLAYWRIGHT_MISSING).expect

MEASURE_S = 10  # > 8 s of video, and the microphone's loop: speech, silence, speech again
CLOSED = 0.06  # inner-lip gap / inter-ocular distance of a closed mouth (a speaking one reaches 0.1-0.3)
LONG_TEXT = (
    "This is a long sentence, spoken by the server, so that there is plenty of speech left to cut off "
    "when the interrupt button is pressed in the middle of it, and then some more words after that."
)


def test_microphone_speech_moves_the_mouth_at_25_fps(page, web_server, analyzer, artifacts):
    open_page(page, web_server)
    expect(page.locator("#idle-image")).to_be_visible()
    page.screenshot(path=artifacts / "webrtc-idle.png")

    page.click("#start")
    page.wait_for_function("['listening', 'speaking'].includes(window.sonic.state)", timeout=20_000)
    expect(page.locator("#fig-transport")).to_have_text("WebRTC")
    start_video_probe(page)
    since = now_ms(page) + 500  # the first frames may come in with the connection still settling
    page.wait_for_function("window.sonic.state === 'speaking'", timeout=10_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=artifacts / "webrtc-speaking.png")
    page.wait_for_timeout(MEASURE_S * 1000 - 1000)

    fps, seconds = presented_fps(page, since)
    frames = pull_frames(page)
    # speech has started in the microphone's audio and come back in the face's voice: measured
    expect(page.locator("#fig-latency-label")).to_have_text("Latency (measured)")
    latency = page.inner_text("#fig-latency")
    assert re.fullmatch(r"\d+ ms", latency), latency
    assert seconds >= 8 and fps >= 24, f"{fps:.1f} fps over {seconds:.1f} s"

    openings = mouth_openings(analyzer, frames)
    voiced = speaking(frames)
    speech, silence = steady(frames, voiced), steady(frames, ~voiced)
    assert speech.sum() >= 10 and silence.sum() >= 10, f"{speech.sum()} speech, {silence.sum()} silent frames"
    moving, still = spread(openings[speech]), spread(openings[silence])
    silent_p90 = float(np.nanpercentile(openings[silence], 90))
    save_frames([f for f, s in zip(frames, speech, strict=True) if s], artifacts / "webrtc-frames-speech.png")
    save_frames([f for f, s in zip(frames, silence, strict=True) if s], artifacts / "webrtc-frames-silence.png")
    record(artifacts, "webrtc_microphone", {
        "fps": round(fps, 2), "seconds": round(seconds, 2), "latency_shown": latency,
        "speech_spread_p90_p10": round(moving, 4),
        "silence_spread_p90_p10": round(still, 4), "silence_p90": round(silent_p90, 4),
        "speech_p90": round(float(np.nanpercentile(openings[speech], 90)), 4),
        "frames_speech": int(speech.sum()), "frames_silence": int(silence.sum()),
    })  # fmt: skip
    assert moving >= 3 * max(still, 0.01), f"mouth spread: speech {moving:.3f}, silence {still:.3f}"
    assert silent_p90 <= CLOSED, f"the mouth in silence: {silent_p90:.3f}"
    # what chromium showed (VP8, decoded, drawn, captured as JPEG) carries the session's watermark
    ready = page.evaluate("window.sonic.events.find(e => e.type === 'ready')")
    assert detect([f.image for f in frames]).payload == int(ready["watermark"], 16)
    expect(page.locator("#watermark-note")).to_contain_text(ready["watermark"])

    # the session's MP4, complete after Stop
    link = page.locator("#download")
    expect(link).to_be_visible()
    href = link.get_attribute("href")
    page.click("#stop")
    page.wait_for_function("window.sonic.state === 'stopped'", timeout=5000)
    expect(link).to_be_visible()
    mp4 = httpx.get(f"{web_server.http}{href}", timeout=30)
    assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(mp4.content)) as container:
        shown = sum(1 for _ in container.decode(video=0))
    assert shown >= MEASURE_S * 25 * 0.9, f"{shown} frames in the recording"


def test_interrupt_returns_the_face_to_rest(page, web_server, analyzer, artifacts):
    open_page(page, web_server)
    page.check("input[name=input][value=text]")
    page.fill("#text", LONG_TEXT)
    page.click("#start")
    page.wait_for_function("window.sonic.state === 'live'", timeout=20_000)
    start_video_probe(page)
    page.wait_for_timeout(1000)  # the face idling
    page.click("#say")
    page.wait_for_function("window.sonic.state === 'speaking'", timeout=15_000)
    page.wait_for_timeout(2000)  # well inside the sentence
    page.click("#interrupt")
    page.wait_for_function("window.sonic.state === 'interrupted'", timeout=5000)
    expect(page.locator("#fig-state")).to_have_text("interrupted")
    page.screenshot(path=artifacts / "webrtc-interrupted.png")
    page.wait_for_timeout(1500)

    frames = pull_frames(page)
    events = [e["type"] for e in page.evaluate("window.sonic.events")]
    assert "speech_start" not in events[events.index("interrupted") :], events  # the rest was dropped
    t_interrupt = next(f.t for f in frames if f.state == "interrupted")
    openings = mouth_openings(analyzer, frames)
    t = np.array([f.t for f in frames])
    voiced = speaking(frames)
    idle = openings[steady(frames, ~voiced) & (t < t_interrupt)]
    spoken = openings[steady(frames, voiced)]
    after = openings[t >= t_interrupt + 300]
    save_frames([f for f in frames if f.t >= t_interrupt - 500], artifacts / "webrtc-frames-interrupt.png")
    record(artifacts, "webrtc_interrupt", {
        "idle_median": round(float(np.nanmedian(idle)), 4), "speaking_spread": round(spread(spoken), 4),
        "after_interrupt_max": round(float(np.nanmax(after)), 4), "after_frames": int(len(after)),
    })  # fmt: skip
    assert len(idle) >= 5 and len(spoken) >= 5 and len(after) >= 10
    assert spread(spoken) >= 3 * max(spread(after), 0.01)
    assert np.nanpercentile(after, 90) <= min(CLOSED, np.nanmedian(idle) + 0.03)  # back at rest, mouth closed


def test_an_audio_file_is_spoken_and_interrupt_stops_it(page, web_server, fake_microphone):
    open_page(page, web_server)
    page.check("input[name=input][value=file]")
    page.set_input_files("#audio-file", str(fake_microphone))  # a WAV: decoded by the browser
    page.click("#play-file")  # starts a session first
    page.wait_for_function("window.sonic.state === 'speaking'", timeout=20_000)
    expect(page.locator("#message")).to_contain_text("Playing speech.wav")
    # a slider mid-session goes over the data channel; the server answers with the values in force
    set_slider(page, "#motion-scale", 0.5)
    expect(page.locator("#params-status")).to_contain_text("mouth 1.00, head and expression 0.50")
    page.click("#interrupt")
    page.wait_for_function("window.sonic.state === 'interrupted'", timeout=5000)
    # the file stopped with the interrupt: nothing more is heard, the face stays quiet
    page.wait_for_function("window.sonic.state === 'live'", timeout=5000)
    page.wait_for_timeout(1000)
    events = [e["type"] for e in page.evaluate("window.sonic.events")]
    assert "speech_start" not in events[events.index("interrupted") :], events
