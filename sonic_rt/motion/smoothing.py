"""Causal motion smoothing: a one-pole low-pass per channel, on the frame clock.

Head pose and expression get the strongest smoothing (a head does not jitter; what jitter the
sampler leaves, and any step where two generated windows meet, is filtered out); the mouth is
left sharp, since every frame of lag there is a frame of lip-sync error. ``strength`` scales
the time constants: 0 turns smoothing off, 1 is the default, 2 twice as smooth.
"""

from __future__ import annotations

import numpy as np

from . import vector

TIME_CONSTANT_FRAMES = {  # at strength 1
    **{name: 2.0 for name in vector.HEAD_CHANNELS},
    "smile": 1.5,
    "brows": 1.5,
}


class MotionSmoother:
    def __init__(self, strength: float = 1.0) -> None:
        tau = np.zeros(vector.DIM, np.float64)
        for name, frames in TIME_CONSTANT_FRAMES.items():
            tau[vector.INDEX[name]] = frames * strength
        self._alpha = 1.0 / (1.0 + tau)  # 1 = pass through
        self._state: np.ndarray | None = None

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Smooth ``(n, DIM)`` frames that follow the previous call's."""
        out = np.empty_like(frames)
        state = self._state
        for i, vec in enumerate(frames.astype(np.float64)):
            state = vec if state is None else state + self._alpha * (vec - state)
            out[i] = state
        self._state = state
        return out
