"""The phonetic track: which mouth shape is being articulated, every 10 ms, with a confidence.

Rows run on the log-mel frames' 10 ms grid (row ``k`` is samples ``[160 k, 160 (k + 1))``; video
frame ``n`` owns rows ``4n .. 4n + 3``), so the motion model reads a frame's phones beside its mel
frames. A row is a class of ``sonic_rt.audio.phoneset.CLASSES`` and a confidence in [0, 1]. The model
sees it as ``FEATURES`` numbers: the class one-hot, the class's articulatory target (jaw, width,
rounding, upper and lower lip: what the class *looks* like, so that rare classes are learnt
through common ones) and the confidence, the first two scaled by the confidence.

Two sources behind one ``PhoneticTrack``:

- **a script**: the phonemes of speech whose text is known (the embedded text-to-speech reports
  each phoneme's interval exactly), or ``sonic_rt.audio.timings.Mark``s of a client's own TTS timings,
  pushed with the audio they belong to. Their rows are given out at once, confidence 1.
- **the recogniser** (``sonic_rt.audio.recognizer``) for any other audio: rows given out a fixed delay
  behind the newest audio.

Audio with and without a script may alternate on one track (a live session's microphone and the
server's own ``say``): when a script starts, the recogniser's held-back rows are decoded to the
end first, so rows always come out in order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from . import HOP, SAMPLE_RATE, phoneset
from .recognizer import DEFAULT_DELAY_MS, PhoneRecognizer
from .timings import Mark
from .tts import Phoneme

Script = Sequence[Phoneme | Mark]  # espeak's phonemes, or marks from the client's timings (sonic_rt.audio.timings)

N_CLASSES = len(phoneset.CLASSES)
ARTICULATION = 5  # jaw_open, lip_width, lip_round, upper_lip, lower_lip of the class's target
FEATURES = N_CLASSES + ARTICULATION + 1
_TARGET_TABLE = np.zeros((N_CLASSES, ARTICULATION), np.float32)  # unspecified channels: 0
for _name, _i in phoneset.CLASS_INDEX.items():
    if _name in phoneset.TARGETS:
        _TARGET_TABLE[_i] = [0.0 if v is None else v for v in phoneset.TARGETS[_name]]


def encode(classes: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """``(k,)`` classes and confidences -> ``(k, FEATURES)`` float32 model features."""
    classes = np.asarray(classes, np.int64)
    conf = np.asarray(confidence, np.float32)[:, None]
    onehot = np.zeros((len(classes), N_CLASSES), np.float32)
    onehot[np.arange(len(classes)), classes] = 1.0
    return np.concatenate([onehot * conf, _TARGET_TABLE[classes] * conf, conf], axis=1)


def rest_rows(k: int) -> np.ndarray:
    """``(k, FEATURES)``: certain silence (before a stream starts, after it ends)."""
    return encode(np.full(k, phoneset.REST), np.ones(k, np.float32))


CLOSURE_LEAD = 0.05  # s: espeak marks a voiceless stop at its burst; its silent closure comes first


def as_mark(item: Phoneme | Mark) -> Mark:
    """An espeak phoneme as a ``Mark`` (a mark as it is)."""
    if isinstance(item, Mark):
        return item
    return Mark(phoneset.espeak_classes(item.symbol), item.start, item.end, item.symbol in phoneset.CLOSURE_BEFORE)


def script_rows(script: Script, first_row: int, rows: int, origin: float = 0.0) -> np.ndarray:
    """Classes ``(rows,)`` of rows ``first_row ..`` from espeak phonemes or timing marks whose times
    count from ``origin`` seconds on the rows' timeline; each row takes the phoneme at its centre (a
    diphthong's classes split its interval evenly), rest outside them. A voiceless stop (espeak
    times its burst) also takes the closure before it, up to ``CLOSURE_LEAD`` and at most half of
    the phoneme before: the span in which the mouth makes it, as the recogniser labels it."""
    centres = (first_row + np.arange(rows) + 0.5) * HOP / SAMPLE_RATE - origin
    out = np.full(rows, phoneset.REST, np.int64)
    previous = None
    for p in map(as_mark, script):
        if p.end <= p.start:
            continue
        start = p.start
        if p.closure and previous is not None:
            start -= min(CLOSURE_LEAD, 0.5 * (previous.end - previous.start))
        previous = p
        inside = (centres >= start) & (centres < p.end)
        if not inside.any():
            continue
        classes = [phoneset.CLASS_INDEX[c] for c in p.classes]
        end = min(p.end, centres[inside][-1] + 0.5 * HOP / SAMPLE_RATE) if np.isinf(p.end) else p.end
        part = ((centres[inside] - start) / (end - start) * len(classes)).astype(np.int64)
        out[inside] = np.asarray(classes)[np.clip(part, 0, len(classes) - 1)]
    return out


def script_slice(script: Script, start: float, end: float | None = None) -> tuple[Phoneme | Mark, ...]:
    """The phonemes (or marks) of a piece of audio ``[start, end)`` seconds (``end`` None: to the
    end), their times counted from ``start``."""
    return tuple(
        dataclasses.replace(p, start=p.start - start, end=p.end - start)
        for p in script
        if p.end > start and (end is None or p.start < end)
    )


class PhoneticTrack:
    """The phonetic rows of one voice as audio arrives. Not thread-safe: one per session.

    ``push`` and ``finish`` return ``(k, FEATURES)`` float32 rows now known, in order; rows
    count from 0 at the first sample pushed (``reset`` moves the origin)."""

    def __init__(self, delay_ms: int = DEFAULT_DELAY_MS, recognizer: PhoneRecognizer | None = None) -> None:
        self._recognizer = recognizer if recognizer is not None else PhoneRecognizer(delay_ms)
        self.delay_ms = delay_ms
        self.reset()

    def reset(self, start_row: int = 0) -> None:
        """Forget all audio; the next sample pushed is the first of row ``start_row``."""
        self._recognizer.reset(start_row)
        self._position = start_row * HOP  # samples on the rows' timeline
        self._rows_out = start_row
        self._scripted = False

    @property
    def rows_out(self) -> int:
        return self._rows_out

    def push(self, samples: np.ndarray, script: Script | None = None) -> np.ndarray:
        """Add ``(n,)`` 16 kHz samples. ``script``: their phonemes (espeak's, or ``Mark``s of the
        client's timings), times from the first of them (exact rows, given out at once); ``None``:
        recognise them."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        start = self._position
        self._position += len(samples)
        if script is None:
            if self._scripted:  # the recogniser takes over where the script ended
                self._recognizer.reset(self._rows_out)
                self._scripted = False
            return self._recognized(self._recognizer.push(samples))
        out = [] if self._scripted else [self._recognized(self._recognizer.finish())]
        self._scripted = True
        rows = self._position // HOP - self._rows_out
        classes = script_rows(script, self._rows_out, rows, origin=start / SAMPLE_RATE)
        self._rows_out += rows
        out.append(encode(classes, np.ones(rows, np.float32)))
        return np.concatenate(out)

    def finish(self) -> np.ndarray:
        """End of the audio: every row the audio reached (a row only partly covered counts)."""
        if self._scripted:
            rows = -(-self._position // HOP) - self._rows_out
            self._rows_out += rows
            return rest_rows(rows)
        return self._recognized(self._recognizer.finish())

    def _recognized(self, labels: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        self._rows_out += len(labels[0])
        return encode(*labels)
