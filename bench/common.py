"""Helpers shared by the benchmarks: one-core pinning, timing, portraits to measure on."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SONIC_RT_SHARED_DATA", REPO.parent / "shared" / "data"))


def pin_one_core() -> int:
    """Run this process on one core with single-threaded OpenCV; returns the core."""
    import cv2

    core = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {core})
    cv2.setNumThreads(1)
    return core


def time_ms(fn: Callable[[], object], repeat: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def summary(samples: list[float]) -> str:
    p95 = float(np.percentile(samples, 95))
    return f"median {statistics.median(samples):6.2f} ms  p95 {p95:6.2f} ms"


def portrait(name: str | None = None) -> tuple[str, np.ndarray]:
    """A named shared-data portrait, else scikit-image's astronaut photo."""
    from sonic_rt.face.image_io import load_image

    if name and (SHARED_DATA / "images" / name).is_file():
        return name, load_image(SHARED_DATA / "images" / name)
    if name:
        print(f"note: {name} not found under {SHARED_DATA}; using skimage astronaut", file=sys.stderr)
    from skimage import data

    return "skimage astronaut", data.astronaut()
