"""The limits at the server's edge, as options (``sonic-rt serve`` flags, ``Settings.limits``):
what a client may hold before it is anyone, how often it may ask for work that costs CPU, and
what a connection may take to send its request. ``server.gates`` applies them in the app,
``server.connections`` below it, in uvicorn's HTTP protocol. (Only the standard library here: the
command line reads the defaults without importing the server.)
"""

from __future__ import annotations

from dataclasses import dataclass

RATED = {"portraits": "portrait uploads", "renders": "renders", "sessions": "sessions started"}


@dataclass(frozen=True)
class Limits:
    """The limits at the server's edge (``sonic-rt serve`` flags); 0 for a per-address limit or a
    rate: none."""

    # WebSockets before their session starts (server.ws)
    start_timeout_s: float = 10.0  # to send a start that starts a session
    max_unstarted: int = 64  # open at once, all addresses together
    max_unstarted_per_address: int = 8
    # WebRTC offers answered but not yet connected (server.webrtc)
    connect_timeout_s: float = 15.0  # from the answer to the peer connection's "connected"
    max_pending_offers: int = 16
    max_pending_offers_per_address: int = 4
    # rates, per minute and bursts of as many: per client address, and per API key
    portraits_per_minute: int = 30
    portraits_per_minute_per_key: int = 60
    renders_per_minute: int = 10
    renders_per_minute_per_key: int = 20
    sessions_per_minute: int = 30
    sessions_per_minute_per_key: int = 60
    # TCP connections and HTTP requests (server.connections)
    max_connections: int = 512  # open at once (HTTP and WebSocket), all addresses together
    max_connections_per_address: int = 64  # by the peer's own address (behind a proxy: 0)
    connection_rate_per_address: int = 50  # new connections a second from one peer address, bursts of as many
    header_timeout_s: float = 10.0  # to send a request's line and headers
    body_timeout_s: float = 60.0  # to send its body, once the headers are in
    keep_alive_s: float = 5.0  # idle between requests (uvicorn's timeout_keep_alive)
    max_header_bytes: int = 64 * 1024  # the request line and headers
    max_body_bytes: int = 64 * 2**20  # a request's body (uploads are limited to 50 MiB each)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 0 or (name.endswith("_s") and value <= 0):
                raise ValueError(f"{name} must be {'positive' if name.endswith('_s') else '0 or more'}, not {value}")
        for name in ("max_unstarted", "max_pending_offers", "max_connections", "max_header_bytes", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def per_minute(self, kind: str) -> tuple[int, int]:
        """The rate of ``kind`` (a key of ``RATED``): per address, per key."""
        return getattr(self, f"{kind}_per_minute"), getattr(self, f"{kind}_per_minute_per_key")
