"""The page gets its session back when the server goes away and comes back on the same port."""

from __future__ import annotations

import pytest

from tests.server.conftest import LiveServer
from tests.web.conftest import PLAYWRIGHT_MISSING, server_settings
from tests.web.probe import open_page

expect = pytest.importorskip("playwright.sync_api", reason=PLAYWRIGHT_MISSING).expect

RUNNING = "['live', 'listening', 'speaking'].includes(window.sonic.state)"


class ServerOnPort(LiveServer):
    """A LiveServer on a given port: a restarted server where the page expects the old one."""

    def __init__(self, settings, port: int) -> None:
        super().__init__(settings)
        self.port = self.server.config.port = port


def test_a_dropped_session_reconnects_with_the_same_portrait(page, artifacts):
    with LiveServer(server_settings()) as first:
        port = first.port
        open_page(page, first)
        page.click("#start")
        page.wait_for_function(RUNNING, timeout=20_000)
        page.wait_for_function("window.sonic.figures().fps > 20", timeout=10_000)
        portrait = page.evaluate("window.sonic.portrait")
    # the server is gone: the page says so and counts down to its next attempt
    page.wait_for_function("window.sonic.state === 'reconnecting'", timeout=10_000)
    expect(page.locator("#message")).to_contain_text("Disconnected — reconnecting in", timeout=5000)
    page.screenshot(path=artifacts / "reconnecting.png")

    with ServerOnPort(server_settings(), port) as second:
        # the new server never saw the portrait: the page enrols it again and carries on
        page.wait_for_function(RUNNING, timeout=40_000)
        page.wait_for_function("window.sonic.figures().fps > 20", timeout=10_000)
        expect(page.locator("#message")).to_have_text("Reconnected.")
        assert page.evaluate("window.sonic.portrait") == portrait  # same sample, same id
        assert second.state.slots.used == 1
        page.screenshot(path=artifacts / "reconnected.png")
        page.click("#stop")
        page.wait_for_function("window.sonic.state === 'stopped'", timeout=5000)


def test_a_full_server_is_retried(page, web_server):
    slots = web_server.state.slots
    taken = 0
    while slots.try_acquire():  # every place taken, as if by other people's sessions
        taken += 1
    try:
        open_page(page, web_server)
        page.check("input[name=input][value=text]")
        page.click("#start")
        page.wait_for_function("window.sonic.state === 'reconnecting'", timeout=10_000)
        expect(page.locator("#message")).to_contain_text("The server is full right now. Retrying in")
    finally:
        for _ in range(taken):
            slots.release()
    page.wait_for_function(RUNNING, timeout=15_000)
    expect(page.locator("#message")).to_have_text("Connected.")
