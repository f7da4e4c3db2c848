"""Motion that goes on whatever the audio does: blinks and breathing.

Blinks are not predictable from speech and need a memory of seconds (when was the last one?),
longer than the motion model's window, so they are scheduled here: intervals drawn from a
log-normal around the median measured on real talking videos, kept within 2-6 s, each blink
a short close-and-reopen of the measured length. Breathing is a slow nod and rise of the
head. Both are added to the model's motion on the same frame clock.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..audio import FPS
from . import vector

BLINK_INTERVAL_RANGE = (2.0, 6.0)  # s


@dataclass(frozen=True)
class IdleParams:
    blink_interval: float = 3.5  # median seconds between blinks (measured by training)
    blink_length: float = 0.2  # seconds from lid going down to open again (measured by training)
    breath_period: float = 4.0  # s
    breath_pitch: float = 0.5  # degrees of nod at the top of a breath
    breath_rise: float = 0.008  # IOD the head rises at the top of a breath

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> IdleParams:
        return cls(**json.loads(path.read_text()))


def blink_shape(length_s: float, fps: int = FPS) -> np.ndarray:
    """Lid closure per frame over one blink: quick down, slower up; peaks at 1."""
    frames = max(3, int(round(length_s * fps)))
    down = max(1, frames // 3)
    t = np.arange(frames, dtype=np.float64)
    shape = np.where(t < down, (t + 1) / down, 1.0 - (t - down) / (frames - down))
    return np.clip(shape, 0.0, 1.0).astype(np.float32)


class IdleMotion:
    """Additive idle motion, frame after frame; reproducible for a seed."""

    def __init__(self, params: IdleParams, seed: int, fps: int = FPS) -> None:
        self.params = params
        self.fps = fps
        self._rng = np.random.default_rng(seed)
        self._shape = blink_shape(params.blink_length, fps)
        self._frame = 0
        self._next_blink = self._draw_interval() * 0.5  # the first comes sooner
        self._phase = self._rng.uniform(0, 2 * np.pi)

    def _draw_interval(self) -> float:
        lo, hi = BLINK_INTERVAL_RANGE
        return float(np.clip(self.params.blink_interval * np.exp(0.35 * self._rng.standard_normal()), lo, hi))

    def next(self, n: int) -> np.ndarray:
        """Offsets ``(n, DIM)`` for the next ``n`` frames."""
        out = vector.neutral(n)
        t = (self._frame + np.arange(n)) / self.fps
        breath = np.sin(2 * np.pi * t / self.params.breath_period + self._phase)
        out[:, vector.INDEX["head_pitch"]] = self.params.breath_pitch * breath
        out[:, vector.INDEX["head_y"]] = -self.params.breath_rise * breath
        for i in range(n):
            frame = self._frame + i
            start = int(round(self._next_blink * self.fps))
            if frame >= start + len(self._shape):
                self._next_blink += self._draw_interval()
                start = int(round(self._next_blink * self.fps))
            k = frame - start
            if 0 <= k < len(self._shape):
                out[i, vector.INDEX["blink_left"]] = out[i, vector.INDEX["blink_right"]] = self._shape[k]
        self._frame += n
        return out
