"""Measurements on face landmarks (of a photo, a video frame or a rendered frame).

Used by the tests, the lip-sync benchmark and the training data tracker, so that all three
measure a mouth the same way. Distances are in inter-ocular distances (IOD, iris centre to
iris centre), which makes them independent of image size.
"""

from __future__ import annotations

import numpy as np

from . import landmarks as lm


def iod(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[lm.LEFT_IRIS_CENTER, :2] - points[lm.RIGHT_IRIS_CENTER, :2]))


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip gap at the centre over inter-ocular distance."""
    gap = np.linalg.norm(points[lm.LOWER_LIP_CENTER_INNER, :2] - points[lm.UPPER_LIP_CENTER_INNER, :2])
    return float(gap / iod(points))


def eye_aspect_ratio(points: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...]) -> float:
    """Mean lid-to-lid distance over eye width."""
    width = np.linalg.norm(points[upper[0], :2] - points[upper[-1], :2])
    gaps = [np.linalg.norm(points[u, :2] - points[d, :2]) for u, d in zip(upper[2:-2], lower[2:-2], strict=True)]
    return float(np.mean(gaps) / width)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 when either series is constant."""
    a = np.asarray(a, dtype=np.float64) - np.mean(a)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def best_lag(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The shift ``k`` (frames, |k| <= max_lag) maximising corr(a[t], b[t + k]), and that r.

    ``k > 0`` means ``b`` lags ``a`` (``b`` shows at ``t + k`` what ``a`` shows at ``t``).
    """
    best = (0, -2.0)
    n = min(len(a), len(b))
    for k in range(-max_lag, max_lag + 1):
        lo, hi = max(0, -k), min(n, n - k)
        if hi - lo < 10:
            continue
        r = pearson(a[lo:hi], b[lo + k : hi + k])
        if r > best[1]:
            best = (k, r)
    return best
