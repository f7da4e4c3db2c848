"""The phonetic track as Oculus/OVR viseme weights, per frame, for clients that drive a 3-D avatar.

The 15 OVR visemes (``NAMES``) are the vocabulary three.js, Ready Player Me and Unity avatars
animate. Each class of ``sonic_rt.audio.phoneset`` maps onto one; a frame's weights are the share of its
four 10 ms rows (``sonic_rt.audio.phonetic``) in each viseme, so they sum to one and blend across a phone
boundary inside the frame. A glottal row (``h``, shaped by its neighbours) takes the viseme of the
row before it. The rows are the ones the motion model reads, and the weights go through the same
output clock as the motion (``sonic_rt.motion.retime``), so an avatar and the rendered face say the same
thing at the same time.
"""

from __future__ import annotations

import numpy as np

from . import MELS_PER_FRAME, phoneset

NAMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")
SILENT = NAMES.index("sil")
# classes (by IPA name) -> OVR viseme
_OVR = {
    "rest": "sil",
    "p": "PP", "β": "PP",
    "f": "FF",
    "θ": "TH",
    "t": "DD",
    "k": "kk",
    "ʃ": "CH", "ʂ": "CH", "ɕ": "CH",
    "s": "SS",
    "l": "nn",
    "ɹ": "RR", "ɚ": "RR",
    "æ": "aa", "a": "aa", "ɑ": "aa", "ʌ": "aa",
    "e": "E", "ɛ": "E", "ə": "E", "ɜ": "E", "ɤ": "E",
    "i": "ih", "ɪ": "ih", "j": "ih", "ɿ": "ih", "ʅ": "ih",
    "ɒ": "oh", "ɔ": "oh", "o": "oh",
    "ʊ": "ou", "u": "ou", "y": "ou", "w": "ou",
}  # fmt: skip
TRANSPARENT = -1
TABLE = np.array(
    [TRANSPARENT if c == phoneset.TRANSPARENT_CLASS else NAMES.index(_OVR[c]) for c in phoneset.CLASSES], np.int64
)
REST = np.eye(len(NAMES), dtype=np.float32)[SILENT]  # the weights of silence


class VisemeTrack:
    """Phonetic rows in, per-frame OVR weights out; one per stream (``reset`` at an interrupt)."""

    def __init__(self) -> None:
        self._rows = np.zeros(0, np.int64)  # viseme per row not yet turned into a frame
        self._last = SILENT  # the viseme a glottal row continues

    def push(self, classes: np.ndarray) -> None:
        """Add rows' classes ``(k,)`` (``phoneset.CLASS_INDEX``), in order."""
        ids = TABLE[np.asarray(classes, np.int64)]
        for i in np.flatnonzero(ids == TRANSPARENT):
            ids[i] = ids[i - 1] if i else self._last
        if len(ids):
            self._last = int(ids[-1])
        self._rows = np.concatenate([self._rows, ids])

    def frames(self, n: int) -> np.ndarray:
        """The weights ``(n, len(NAMES))`` of the next ``n`` frames; rows not pushed are silence."""
        need = n * MELS_PER_FRAME
        rows = np.concatenate([self._rows[:need], np.full(max(0, need - len(self._rows)), SILENT, np.int64)])
        self._rows = self._rows[need:]
        out = np.zeros((n, len(NAMES)), np.float32)
        np.add.at(out, (np.repeat(np.arange(n), MELS_PER_FRAME), rows), 1.0 / MELS_PER_FRAME)
        return out

    def reset(self) -> None:
        """Forget rows not yet turned into frames (an interrupt drops their audio)."""
        self._rows = np.zeros(0, np.int64)
        self._last = SILENT


def classes_of(rows: np.ndarray) -> np.ndarray:
    """``(k, FEATURES)`` phonetic rows -> their classes ``(k,)`` (the one-hot's largest entry)."""
    return np.argmax(np.asarray(rows)[:, : len(phoneset.CLASSES)], axis=1)


def as_dict(weights: np.ndarray, digits: int = 3) -> dict[str, float]:
    """One frame's weights by name, rounded (what the ``visemes`` event carries)."""
    return {name: round(float(w), digits) for name, w in zip(NAMES, weights, strict=True)}
