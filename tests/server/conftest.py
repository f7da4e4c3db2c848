"""A real server on loopback for the integration tests (uvicorn in a thread, a free port)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time

import pytest


class LiveServer:
    def __init__(self, settings, **options) -> None:
        """``options``: more of uvicorn's settings (``ssl_certfile`` and ``ssl_keyfile``: HTTPS and WSS).
        The connections are bounded by ``settings.limits`` as ``sonic-rt serve`` bounds them."""
        import uvicorn

        from server.app import create_app
        from server.cli import WS_MAX_BYTES
        from server.connections import uvicorn_options

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.app = create_app(settings)
        options = {**uvicorn_options(self.app, settings.limits), **options}  # with ws: websockets, sans-I/O
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                ws_max_size=WS_MAX_BYTES, lifespan="on", **options)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def http(self) -> str:
        return f"{'https' if self.server.config.is_ssl else 'http'}://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"{'wss' if self.server.config.is_ssl else 'ws'}://127.0.0.1:{self.port}/v1/stream"

    @property
    def state(self):
        return self.app.state.sonic

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def unrated(limits=None):
    """``limits`` (default: the defaults) without rate limits: a test suite is many clients on one
    address in quick succession, not one user (the rates have their own tests, in test_gates.py)."""
    from server.limits import RATED, Limits

    rates = {f"{kind}_per_minute{per}": 0 for kind in RATED for per in ("", "_per_key")}
    return dataclasses.replace(limits or Limits(), connection_rate_per_address=0, **rates)


@pytest.fixture(scope="session")
def server():
    from server.state import Settings

    with LiveServer(Settings(max_sessions=2, ice_addresses=("127.0.0.1",), limits=unrated())) as live:
        yield live


def run(coro, timeout: float = 60):
    """Run a test's coroutine with a hard time limit."""
    return asyncio.run(asyncio.wait_for(coro, timeout))
