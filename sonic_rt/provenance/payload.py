"""The watermark's payload: a 32-bit number naming one session, which the audit log issues.

Light (the standard library only), so the audit log draws and checks payloads without loading
the watermark's image code (``sonic_rt.provenance.watermark``: numpy, OpenCV).
"""

from __future__ import annotations

import secrets

PAYLOAD_BITS = 32


def new_payload() -> int:
    """A random payload (the audit log draws until it has one no session in the log has had)."""
    return secrets.randbits(PAYLOAD_BITS)
