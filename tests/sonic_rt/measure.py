"""Measurements on rendered frames, taken by the face-landmark model (not by our own geometry)."""

from __future__ import annotations

import numpy as np

from sonic_rt import landmarks as lm


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip gap over inter-ocular distance."""
    iod = np.linalg.norm(points[lm.LEFT_IRIS_CENTER, :2] - points[lm.RIGHT_IRIS_CENTER, :2])
    return float(np.linalg.norm(points[lm.LOWER_LIP_CENTER_INNER, :2] - points[lm.UPPER_LIP_CENTER_INNER, :2]) / iod)


def eye_aspect_ratio(points: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...]) -> float:
    """Mean lid-to-lid distance over eye width."""
    width = np.linalg.norm(points[upper[0], :2] - points[upper[-1], :2])
    gaps = [np.linalg.norm(points[u, :2] - points[d, :2]) for u, d in zip(upper[2:-2], lower[2:-2], strict=True)]
    return float(np.mean(gaps) / width)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
