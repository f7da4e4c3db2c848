"""Is the voice speaking? silero-vad over a 16 kHz stream, 32 ms at a time, with hysteresis.

The model ships inside the ``silero-vad`` wheel (no download). A stream starts in silence;
speech starts when a window's probability reaches ``threshold`` and ends once it has stayed
below ``threshold - 0.15`` for ``release_ms``, so the short gaps between words stay speech.
"""

from __future__ import annotations

import numpy as np
import torch

from sonic_rt.audio import SAMPLE_RATE
from sonic_rt.spares import Spares

WINDOW = 512  # samples per silero call at 16 kHz (32 ms)


def _model():
    from silero_vad import load_silero_vad

    return load_silero_vad()


def _clean(model) -> None:
    """A model as it was loaded: no state left from the stream that had it."""
    model.reset_states()


# the models of streams that are gone, for the next (loading one takes 40-65 ms, GIL mostly held)
MODELS = Spares(_model, _clean)


class VoiceActivity:
    """Speech state of one stream. Not thread-safe: one per session."""

    def __init__(self, threshold: float = 0.5, release_ms: int = 300) -> None:
        self._model = MODELS.take(self)
        self.threshold = threshold
        self._release = release_ms * SAMPLE_RATE // 1000
        self._rest = np.zeros(0, np.float32)
        self._quiet = 0  # samples below the release threshold while speaking
        self.speaking = False

    def push(self, samples: np.ndarray) -> bool:
        """Add ``(n,)`` float32 samples; return whether the voice is speaking after them."""
        buf = np.concatenate([self._rest, samples.astype(np.float32)])
        n = len(buf) // WINDOW * WINDOW
        self._rest = buf[n:]
        with torch.inference_mode():
            for window in buf[:n].reshape(-1, WINDOW):
                self._update(float(self._model(torch.from_numpy(window), SAMPLE_RATE)))
        return self.speaking

    def reset(self) -> None:
        self._model.reset_states()
        self._rest = np.zeros(0, np.float32)
        self._quiet = 0
        self.speaking = False

    def _update(self, probability: float) -> None:
        if probability >= self.threshold:
            self.speaking, self._quiet = True, 0
        elif self.speaking and probability < self.threshold - 0.15:
            self._quiet += WINDOW
            if self._quiet >= self._release:
                self.speaking, self._quiet = False, 0
