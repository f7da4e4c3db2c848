"""The page against a server that needs API keys: it asks for one, refuses a wrong one politely,
goes live with the right one (WebRTC: the key as a header; WebSocket: in the start message), and
a key revoked since is refused without the page trying to reconnect."""

from __future__ import annotations

import dataclasses

import pytest

from server.keys import KeyStore
from tests.server.conftest import LiveServer
from tests.web.conftest import PLAYWRIGHT_MISSING, server_settings

expect = pytest.importorskip("playwright.sync_api", reason=PLAYWRIGHT_MISSING).expect

REFUSED = "The server refused this API key: it is missing, unknown or revoked. Enter a valid key."
# every state the page shows, in order (installed once the page has loaded)
WATCH_STATES = """() => {
  const el = document.getElementById("fig-state");
  window.__states = [el.textContent];
  new MutationObserver(() => window.__states.push(el.textContent)).observe(el, {childList: true, subtree: true});
}"""


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys.db")
    key, _ = store.add("browser")
    with LiveServer(dataclasses.replace(server_settings(), keys_db=store.path)) as server:
        yield server, store, key


def enter_key(page, key: str) -> None:
    page.fill("#api-key", key)
    page.click("#use-key")


def go_live(page) -> None:
    page.check("input[name=input][value=text]")
    page.click("#start")
    page.wait_for_function("window.sonic.state === 'live'", timeout=20_000)
    page.wait_for_function("window.sonic.figures().fps > 0", timeout=10_000)


def test_the_page_asks_for_a_key_refuses_a_wrong_one_and_goes_live_with_the_right_one(page, keyed, artifacts):
    server, store, key = keyed
    page.goto(server.http)
    expect(page.locator("#key-card")).to_be_visible()
    expect(page.locator("#key-status")).to_have_text("Enter the API key you were given.")
    expect(page.locator("#portrait-status")).to_have_text("Enter an API key to begin.")
    expect(page.locator("#samples button")).to_have_count(1)  # the samples are public
    expect(page.locator("#start")).to_be_disabled()

    enter_key(page, "srt_not-a-key-this-server-made")
    status = page.locator("#key-status")
    expect(status).to_have_text(REFUSED)
    expect(status).to_have_attribute("data-level", "error")
    expect(page.locator("#start")).to_be_disabled()
    assert page.evaluate("sessionStorage.length") == 0  # a refused key is not kept
    page.screenshot(path=artifacts / "auth-refused.png")

    enter_key(page, key)
    expect(status).to_have_text("Key accepted: browser.")
    page.wait_for_function("window.sonic.portrait !== null", timeout=30_000)
    # the portrait at rest needs the key too: fetched with it, shown from a blob: URL
    page.wait_for_function("document.getElementById('idle-image').naturalWidth === 512")
    assert page.eval_on_selector("#idle-image", "img => img.src").startswith("blob:")

    go_live(page)  # over WebRTC: the offer carries the key as a header
    expect(page.locator("#fig-transport")).to_have_text("WebRTC")
    page.click("#stop")
    page.wait_for_function("window.sonic.state === 'stopped'", timeout=5000)
    with page.expect_download() as download:  # the recording needs the key: fetched with it
        page.click("#download")
    assert download.value.path().read_bytes()[4:8] == b"ftyp"

    # the key is kept for the tab: the WebSocket fallback sends it in its start message
    page.goto(f"{server.http}/?transport=ws")
    expect(status).to_have_text("Key accepted: browser.")
    page.wait_for_function("window.sonic.portrait !== null", timeout=30_000)
    go_live(page)
    expect(page.locator("#fig-transport")).to_have_text("WebSocket")
    page.screenshot(path=artifacts / "auth-live.png")
    page.click("#stop")
    page.wait_for_function("window.sonic.state === 'stopped'", timeout=5000)

    # revoked since: the next start is refused, said so in words, and not retried
    store.revoke("browser")
    page.evaluate(WATCH_STATES)
    page.click("#start")
    page.wait_for_function("window.sonic.state === 'error'", timeout=10_000)
    expect(page.locator("#message")).to_have_text(REFUSED)
    expect(status).to_have_text(REFUSED)
    expect(page.locator("#retry")).to_be_disabled()  # until a key is given again
    page.wait_for_timeout(2500)  # longer than the first reconnection delay (1 s)
    states = page.evaluate("window.__states")
    assert "reconnecting" not in states and states[-1] == "error", states
    assert page.evaluate("sessionStorage.length") == 0
    page.screenshot(path=artifacts / "auth-revoked.png")
