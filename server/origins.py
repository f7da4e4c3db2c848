"""Origins and hosts: an ``Origin`` header as a browser writes it, and the names of this machine.

Light (the standard library only): ``sonic-rt serve`` checks ``--allow-origin`` and ``--host``
with them before it loads the server; ``server.auth`` applies them to every request.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
WS_SCHEMES = {"ws": "http", "wss": "https"}


def normal_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case, as a browser writes it (no default port), or None
    for what is not an origin."""
    try:
        parts = urlsplit(origin.strip().lower())
        scheme = WS_SCHEMES.get(parts.scheme, parts.scheme)
        port = parts.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") or parts.query:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{host}" if port in (None, DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def is_loopback(host: str) -> bool:
    """Whether a host name or address (no port) always means this machine."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
