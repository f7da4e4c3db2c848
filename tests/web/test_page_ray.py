"""The page against ``sonic-rt serve --ray``: when the generator replica animating its face dies,
it says so and starts a new session by itself (on a replica that is up)."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pytest

from tests.server.cluster.test_on_ray import replica_pids, running, wait_for
from tests.server.harness import serve
from tests.web.conftest import PLAYWRIGHT_MISSING
from tests.web.probe import open_page

expect = pytest.importorskip("playwright.sync_api", reason=PLAYWRIGHT_MISSING).expect
pytest.importorskip("ray.serve", reason="serving on Ray needs the ray extra: pip install 'sonic-rt[ray]'")

RUNNING = "['live', 'listening', 'speaking'].includes(window.sonic.state)"


@pytest.mark.parametrize("transport", ["ws", "webrtc"])
def test_a_lost_replica_is_said_and_the_page_starts_a_new_session(page, artifacts, tmp_path, transport):
    args = ("--ray", "--replicas", "2", "--replica-cpus", "0.5", "--ice-address", "127.0.0.1")
    with serve(tmp_path / "audit.db", tmp_path / "server.log", max_sessions=2, args=args, stop_s=30) as (proc, url):
        wait_for(lambda: running(url) == 2, 120, "two replicas")
        server = SimpleNamespace(http=url.replace("ws://", "http://").removesuffix("/v1/stream"))
        open_page(page, server, f"?transport={transport}")
        page.check("input[name=input][value=text]")
        page.click("#start")
        page.wait_for_function(RUNNING, timeout=30_000)
        page.wait_for_function("window.sonic.figures().fps > 20", timeout=15_000)

        for pid in replica_pids(proc.pid):  # the session's replica among them
            os.kill(pid, signal.SIGKILL)
        expect(page.locator("#message")).to_contain_text("reconnecting", timeout=20_000)
        page.screenshot(path=artifacts / f"ray-replica-lost-{transport}.png")
        page.wait_for_function(RUNNING, timeout=90_000)  # Serve starts new replicas; the page's retry lands there
        page.wait_for_function("window.sonic.figures().fps > 20", timeout=15_000)
        expect(page.locator("#message")).to_have_text("Reconnected.")
        page.screenshot(path=artifacts / f"ray-reconnected-{transport}.png")
        page.click("#stop")
        page.wait_for_function("window.sonic.state === 'stopped'", timeout=10_000)
