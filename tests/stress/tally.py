"""What the stress suite tried: each test adds its cases per category, and the failures among them,
to ``test-artifacts/stress/tally.jsonl``; ``bench/bench_stress.py`` sums them into the figures.

A *case* is one bad input or fault delivered; a *failure* is one that was not answered as it should
be (no error event or status where one was due, a wrong code, the server or another session
harmed). Tests assert no failures; the tally is what they report on top.

``SONIC_RT_STRESS_SCALE`` (default 1: what CI runs) multiplies the generated case counts, so the
bench can run the same tests much longer.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TALLY = REPO / "test-artifacts" / "stress" / "tally.jsonl"
SCALE = max(1.0, float(os.environ.get("SONIC_RT_STRESS_SCALE", "1")))


def scaled(cases: int) -> int:
    """``cases`` times the stress scale."""
    return max(1, round(cases * SCALE))


def record(category: str, cases: int, failures: int = 0, **detail) -> None:
    """Add ``cases`` tried (``failures`` of them not answered as they should be) to ``category``."""
    TALLY.parent.mkdir(parents=True, exist_ok=True)
    line = {"category": category, "cases": cases, "failures": failures, "at": time.time(), **detail}
    with TALLY.open("a") as out:
        out.write(json.dumps(line) + "\n")
