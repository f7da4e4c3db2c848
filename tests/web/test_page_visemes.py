"""The viseme stream on the page: the checkbox asks for it, the bars follow what the face says."""

from __future__ import annotations

import pytest

from tests.web.conftest import PLAYWRIGHT_MISSING
from tests.web.probe import open_page

expect = pytest.importorskip("playwright.sync_api", reason=PLAYWRIGHT_MISSING).expect

TEXT = "Bob moved the blue boat."
BARS = """() => Object.fromEntries([...document.querySelectorAll('#visemes meter')]
    .map(m => [m.dataset.viseme, m.value]))"""


@pytest.mark.parametrize("transport", ["ws", "webrtc"])
def test_the_viseme_bars_follow_the_speech(page, web_server, artifacts, transport):
    open_page(page, web_server, f"?transport={transport}")
    expect(page.locator("#visemes")).to_be_hidden()
    page.check("#viseme-events")
    page.check("input[name=input][value=text]")
    page.click("#start")
    page.wait_for_function("window.sonic.state === 'live'", timeout=20_000)
    expect(page.locator("#visemes meter")).to_have_count(15)
    assert page.evaluate(BARS)["sil"] == 1  # silence before the first word
    page.fill("#text", TEXT)
    page.click("#say")
    page.wait_for_function("window.sonic.state === 'speaking'", timeout=15_000)
    seen = set()
    for _ in range(40):  # 2 s of speech, sampled every 50 ms
        bars = page.evaluate(BARS)
        assert sum(bars.values()) == pytest.approx(1.0, abs=0.02)
        seen.add(max(bars, key=bars.get))
        page.wait_for_timeout(50)
    page.screenshot(path=artifacts / f"visemes-{transport}.png")
    assert {"PP", "ou"} <= seen, seen  # the lips of b, m and the rounding of oo were shown
    assert page.evaluate("window.sonic.visemesSeen") > 25
    assert not [e for e in page.evaluate("window.sonic.events") if e["type"] == "error"]
