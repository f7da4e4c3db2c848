"""Motion at the model's 25 fps in, motion at the output frame rate and lip-sync offset out.

Output frame ``k`` shows the motion of audio time ``k / fps - offset``: a positive
``lip_sync_offset_ms`` makes the mouth move later than the sound, a negative one earlier. The
motion between two model frames is interpolated linearly; at 25 fps and an offset that is a
multiple of 40 ms every output frame is one model frame exactly. Showing motion from ahead of
the frame's own time (a negative offset) needs that much more motion first, so it adds
``ceil(-offset)`` frames of latency; before the first model frame and after the last, the motion
is held.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .. import audio
from . import vector


class Retimer:
    """Streaming resampler of motion ``(n, DIM)`` arrays onto the output frame clock. Any other
    per-model-frame values can go the same way (``rest``: what is held before the first frame,
    its length their width): the viseme weights do, so they keep the mouth's clock exactly."""

    def __init__(self, fps: int = audio.FPS, lip_sync_offset_ms: float = 0.0, rest: np.ndarray | None = None) -> None:
        self.fps = fps
        self._rest = vector.neutral() if rest is None else np.asarray(rest, np.float32)
        self._step = Fraction(audio.FPS, fps)  # model frames per output frame
        self._shift = Fraction(-lip_sync_offset_ms).limit_denominator(1000) * audio.FPS / 1000  # model frames
        self._motion = np.zeros((0, len(self._rest)), np.float32)  # model frames kept, from self._base on
        self._base = 0
        self._received = 0
        self.frames_out = 0

    def position(self, k: int) -> Fraction:
        """Where output frame ``k`` samples the model's frames (in model frames)."""
        return k * self._step + self._shift

    def first_output_from(self, model_frame: int) -> int:
        """The first output frame not yet made that samples only model frames from ``model_frame`` on."""
        return max(self.frames_out, math.ceil((model_frame - self._shift) / self._step))

    def model_frames_for(self, total_out: int) -> int:
        """How many model frames it takes to produce ``total_out`` output frames."""
        if total_out <= 0:
            return 0
        return max(1, math.ceil(self.position(total_out - 1)) + 1)

    def push(self, frames: np.ndarray) -> np.ndarray:
        """Add model frames; return the output frames whose motion is now known ``(k, DIM)``."""
        self._motion = np.concatenate([self._motion, np.asarray(frames, np.float32).reshape(-1, len(self._rest))])
        self._received += len(frames)
        out = []
        while self._received and math.ceil(self.position(self.frames_out)) < self._received:
            out.append(self._sample(self.frames_out))
            self.frames_out += 1
        self._forget()
        return np.stack(out) if out else self._motion[:0].copy()

    def finish(self, total_out: int) -> np.ndarray:
        """The remaining output frames up to ``total_out``, holding the last model frame."""
        out = [self._sample(k) for k in range(self.frames_out, total_out)]
        self.frames_out = max(self.frames_out, total_out)
        return np.stack(out) if out else self._motion[:0].copy()

    def _sample(self, k: int) -> np.ndarray:
        if not self._received:
            return self._rest.copy()
        p = min(max(self.position(k), Fraction(0)), Fraction(self._received - 1))
        i = math.floor(p)
        w = float(p - i)
        a = self._motion[i - self._base]
        if w == 0.0:
            return a.copy()
        return (1.0 - w) * a + w * self._motion[i + 1 - self._base]

    def _forget(self) -> None:
        keep_from = max(0, math.floor(self.position(self.frames_out)))
        keep_from = min(keep_from, self._received - 1)
        if keep_from > self._base:
            self._motion = self._motion[keep_from - self._base :]
            self._base = keep_from
