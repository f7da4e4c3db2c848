"""The page over its WebSocket fallback (forced with ``?transport=ws``): JPEG frames drawn on a canvas
in step with their speech, latency measured on the page's own audio, sliders sent mid-session."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import PLAYWRIGHT_MISSING
from tests.web.probe import CANVAS_PROBE, drawn_fps, now_ms, open_page, record, set_slider

expect = pytest.importorskip("playwright.sync_api", reason=PLAYWRIGHT_MISSING).expect

TEXT = "Good morning! This face is drawn frame by frame on a canvas, with its voice played by Web Audio."
MEASURE_S = 6
MS = re.compile(r"^\d+ ms$")


def test_websocket_microphone_then_text(page, web_server, artifacts):
    page.add_init_script(CANVAS_PROBE)
    open_page(page, web_server, "?transport=ws")
    page.click("#start")
    page.wait_for_function("['listening', 'speaking'].includes(window.sonic.state)", timeout=20_000)
    expect(page.locator("#fig-transport")).to_have_text("WebSocket")
    expect(page.locator("#fig-transport-label")).to_have_text("Transport (forced)")
    # the microphone's audio is ours: its latency is measured, sent -> shown
    expect(page.locator("#fig-latency-label")).to_have_text("Latency (measured)", timeout=10_000)
    expect(page.locator("#fig-latency")).to_have_text(MS)
    measured = page.inner_text("#fig-latency")
    page.screenshot(path=artifacts / "ws-microphone.png")

    # a slider mid-session: the server answers with the values now in force
    set_slider(page, "#dynamic-scale", 1.5)
    page.wait_for_function(
        "window.sonic.events.some(e => e.type === 'params' && e.params.dynamic_scale === 1.5)", timeout=5000
    )
    expect(page.locator("#params-status")).to_contain_text("mouth 1.50, head and expression 1.00")

    # typed text, spoken by the server: no audio of ours to time, so the model's latency is shown
    page.check("input[name=input][value=text]")
    page.fill("#text", TEXT)
    page.click("#say")
    page.wait_for_function("window.sonic.state === 'speaking'", timeout=15_000)
    since = now_ms(page)
    page.wait_for_timeout(1000)
    page.screenshot(path=artifacts / "ws-speaking.png")
    page.wait_for_timeout(MEASURE_S * 1000 - 1000)
    fps, seconds = drawn_fps(page, since)
    expect(page.locator("#fig-latency-label")).to_have_text("Latency (model)")
    expect(page.locator("#fig-latency")).to_have_text(MS)
    model = page.inner_text("#fig-latency")
    assert page.inner_text("#fig-state") in ("speaking", "live")
    record(artifacts, "ws", {"fps_drawn": round(fps, 2), "seconds": round(seconds, 2),
                             "latency_measured_mic": measured, "latency_model_say": model})  # fmt: skip
    assert fps >= 24, f"{fps:.1f} fps drawn over {seconds:.1f} s"


def test_without_webrtc_the_page_falls_back_to_websocket(page, web_server, artifacts):
    page.add_init_script("delete window.RTCPeerConnection")
    open_page(page, web_server)
    page.check("input[name=input][value=text]")
    page.check("#label")
    page.click("#start")
    page.wait_for_function("window.sonic.state === 'live'", timeout=20_000)
    page.wait_for_function("window.sonic.events.some(e => e.type === 'ready' && e.label === true)", timeout=5000)
    expect(page.locator("#fig-transport")).to_have_text("WebSocket")
    expect(page.locator("#fig-transport-label")).to_have_text("Transport (fallback)")
    expect(page.locator("#message")).to_have_text("This browser has no WebRTC. Using WebSocket instead.")
    expect(page.locator("#fig-fps")).to_have_text(re.compile(r"^2\d\.\d fps$"), timeout=5000)
    page.screenshot(path=artifacts / "ws-fallback-labelled.png")
