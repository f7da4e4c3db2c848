"""A streaming phone recogniser: pocketsphinx's en-us acoustic model in allphone mode.

pocketsphinx's wheel ships the CMU en-us acoustic model (trained on real speech) and a phone
language model; decoding phones with it costs about 0.045x real time on one core. Audio is
decoded in fixed steps of ``STEP`` samples whatever the size of the pieces pushed, so the labels
are the same for a file decoded at once and for a microphone sending 20 ms chunks.

Labels come out on the phonetic track's 10 ms rows (row ``k`` is samples ``[160 k, 160 (k + 1))``)
a fixed ``delay`` behind the newest audio: after each step the partial hypothesis (the best path
so far) labels every row not yet given out, and a row is given out once ``delay`` of audio after
its end has been decoded. Its confidence is the share of the partial hypotheses since the row's
audio arrived that gave it the label it got: a label that kept changing is a guess. Measured on
real speech (issue 18): labels 80 ms behind the newest audio agree 66-78 % with a decode of the
whole utterance, 120 ms behind 74-85 %.

An utterance is ended (its final decode labels the rows still held back) after ``END_SILENCE``
of recognised silence, or after ``MAX_UTTERANCE`` of speech, so the search never grows with the
length of a session.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numpy as np

from ..spares import Spares
from . import HOP, SAMPLE_RATE, phoneset

STEP = 2 * HOP  # samples decoded at once (20 ms), a whole number of rows
FRAME_CENTRE = 205  # samples from a pocketsphinx frame's start to its centre (25.6 ms window)
END_SILENCE = 0.3  # s of silence at the end of the best path that end an utterance
MIN_UTTERANCE = 1.0  # s; shorter utterances are not ended at a silence
MAX_UTTERANCE = 20.0  # s; longer ones are ended regardless
DEFAULT_DELAY_MS = 80
TAIL_FRAMES = int(END_SILENCE * 100)  # pocketsphinx frames (10 ms) of the silence that ends an utterance

# One class index per CMU phone, for the labels of a hypothesis.
_CLASS_OF_PHONE: dict[str, list[int]] = {
    phone: [phoneset.CLASS_INDEX[c] for c in classes] for phone, classes in phoneset.CMU.items()
}


def _decoder():
    try:
        from pocketsphinx import Decoder, get_model_path
    except ImportError as err:  # a declared dependency: only a broken install lands here
        raise RuntimeError("pocketsphinx is not installed (pip install pocketsphinx)") from err
    return Decoder(
        hmm=get_model_path("en-us/en-us"),
        allphone=get_model_path("en-us/en-us-phone.lm.bin"),
        lm=None,
        beam=1e-20,
        pbeam=1e-20,
        lw=2.0,
        cmn="live",
        loglevel="FATAL",
    )


def _clean(decoder) -> None:
    """A decoder as it was made: out of an utterance, its feature computation made anew and its
    cepstral mean (``cmn="live"`` adapts it to a voice as it goes) back to where it starts; it
    labels as a new one then (the mean alone was not enough after a voice gone mid-utterance)."""
    with contextlib.suppress(RuntimeError):  # not in an utterance (the recogniser that had it ended its own)
        decoder.end_utt()
    decoder.reinit_feat()
    decoder.set_cmn(decoder.config["cmninit"])


# the decoders of recognisers that are gone, for the next (making one takes 95-180 ms, GIL held)
DECODERS = Spares(_decoder, _clean)


def segment_classes(phone: str, start: int, end: int) -> np.ndarray:
    """Per-frame classes ``(end - start + 1,)`` of one recognised phone over frames ``start..end``:
    a diphthong's classes split its frames evenly."""
    classes = _CLASS_OF_PHONE.get(phone.upper(), [phoneset.REST])
    n = end - start + 1
    return np.asarray(classes, np.int64)[np.arange(n) * len(classes) // n]


class _Path(NamedTuple):
    """A best path's classes from frame ``offset`` of the utterance to its end, ``frames`` in all."""

    offset: int
    classes: np.ndarray
    frames: int


class PhoneRecognizer:
    """Phone labels of one voice, as audio arrives. Not thread-safe: one per session.

    ``push`` returns ``(classes, confidence)`` for the rows now given out: ``(k,)`` int class
    indices (``sonic_rt.audio.phoneset.CLASSES``) and ``(k,)`` float32 in (0, 1]."""

    def __init__(self, delay_ms: int = DEFAULT_DELAY_MS) -> None:
        if delay_ms < 0 or delay_ms * SAMPLE_RATE % (1000 * HOP):
            raise ValueError(f"delay_ms must be a non-negative multiple of 10, got {delay_ms}")
        self.delay_rows = delay_ms * SAMPLE_RATE // (1000 * HOP)
        self._decoder = DECODERS.take(self)
        self._in_utterance = False
        self.reset()

    def reset(self, start_row: int = 0) -> None:
        """Forget everything; the next sample pushed is the first of row ``start_row``."""
        if self._in_utterance:
            self._decoder.end_utt()
        self._in_utterance = False
        self._buffer = np.zeros(0, np.int16)
        self._decoded = 0  # samples decoded since start_row began
        self._start_row = start_row
        self._utt_start = 0  # sample (from start_row) where the current utterance began
        self._emitted = start_row  # rows given out
        self._labels: list[int] = []  # latest label of each held-back row, from row self._emitted
        self._agree: list[tuple[int, int]] = []  # (votes for the latest label, hypotheses seen)

    @property
    def rows_out(self) -> int:
        """Rows given out so far (absolute, counting from 0)."""
        return self._emitted

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add ``(n,)`` float32 16 kHz samples; returns the rows now labelled."""
        pcm = (np.clip(np.asarray(samples, np.float32), -1.0, 1.0) * 32767.0).astype(np.int16)
        self._buffer = np.concatenate([self._buffer, pcm])
        out: list[tuple[np.ndarray, np.ndarray]] = []
        while len(self._buffer) >= STEP:
            step, self._buffer = self._buffer[:STEP], self._buffer[STEP:]
            out.append(self._step(step))
        return _join(out)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """End of the audio: decode what is left and label every row it reached (a row only partly
        covered counts), then start afresh after it."""
        rest = self._buffer
        self._buffer = np.zeros(0, np.int16)
        if len(rest):
            self._ensure_utterance()
            self._decoder.process_raw(rest.tobytes(), False, False)
            self._decoded += len(rest)
        rows = -(-self._decoded // HOP)
        out = self._end_utterance(rows)
        self.reset(self._start_row + rows)
        return out

    # --- decoding ---------------------------------------------------------------------------

    def _ensure_utterance(self) -> None:
        if not self._in_utterance:
            self._decoder.start_utt()
            self._in_utterance = True
            self._utt_start = self._decoded

    def _step(self, pcm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._ensure_utterance()
        self._decoder.process_raw(pcm.tobytes(), False, False)
        self._decoded += len(pcm)
        path = self._path(self._decoder.seg(), tail=TAIL_FRAMES)
        decoded_rows = self._decoded // HOP
        self._vote(path, decoded_rows)
        out = self._give_out(decoded_rows - self.delay_rows)
        seconds = (self._decoded - self._utt_start) / SAMPLE_RATE
        silent_tail = path.frames >= TAIL_FRAMES and (path.classes[-TAIL_FRAMES:] == phoneset.REST).all()
        if (seconds >= MIN_UTTERANCE and silent_tail) or seconds >= MAX_UTTERANCE:
            out = _join([out, self._end_utterance(decoded_rows)])
        return out

    def _path(self, segments, tail: int = 0) -> _Path:
        """The best path as one class per pocketsphinx frame of the utterance, from the first
        frame a held-back row can take (and at least its last ``tail`` frames) to its end: rows
        given out need theirs no more, and building a long utterance's whole path at every step
        cost more than decoding it."""
        spans = [] if segments is None else [(s.word, s.start_frame, s.end_frame) for s in segments]
        spans = [span for span in spans if span[2] >= span[1]]
        frames = sum(end - start + 1 for _, start, end in spans)
        first_row = self._emitted - self._start_row
        needed = int(np.rint((first_row * HOP + HOP / 2 - self._utt_start - FRAME_CENTRE) / HOP))
        offset = max(0, min(needed, frames - max(tail, 1)))
        parts, position = [], 0
        for phone, start, end in spans:
            n = end - start + 1
            if position + n > offset:
                parts.append(segment_classes(phone, start, end)[max(0, offset - position) :])
            position += n
        classes = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return _Path(offset, classes, frames)

    def _row_labels(self, path: _Path, first: int, last: int) -> np.ndarray:
        """Labels of rows ``first..last-1`` (relative to start_row) from a frame path: each row takes
        the frame whose centre is nearest the row's centre; rows past the path's end take its last."""
        rows = np.arange(first, last)
        if path.frames == 0:
            return np.full(len(rows), phoneset.REST, np.int64)
        frames = np.rint((rows * HOP + HOP / 2 - self._utt_start - FRAME_CENTRE) / HOP).astype(np.int64)
        return path.classes[np.clip(frames, path.offset, path.frames - 1) - path.offset]

    def _vote(self, path: _Path, decoded_rows: int, final: bool = False) -> None:
        """Each held-back row votes for its label in ``path``; during an utterance only the rows
        a decoded frame has reached (the newest ~25 ms have none yet), at its end all of them."""
        first = self._emitted - self._start_row
        if not final:
            reached = (self._utt_start + path.frames * HOP + FRAME_CENTRE) // HOP
            decoded_rows = min(decoded_rows, reached)
        labels = self._row_labels(path, first, decoded_rows)
        for i, label in enumerate(labels):
            label = int(label)
            if i < len(self._labels):
                votes, seen = self._agree[i]
                same = votes + 1 if label == self._labels[i] else 1
                self._labels[i], self._agree[i] = label, (same, seen + 1)
            else:
                self._labels.append(label)
                self._agree.append((1, 1))

    def _give_out(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        n = max(0, min(rows - (self._emitted - self._start_row), len(self._labels)))
        classes = np.array(self._labels[:n], np.int64)
        confidence = np.array([v / s for v, s in self._agree[:n]], np.float32)
        del self._labels[:n], self._agree[:n]
        self._emitted += n
        return classes, confidence

    def _end_utterance(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Final decode of the utterance: its labels replace the partial ones for every row held back."""
        if not self._in_utterance:
            pad = rows - (self._emitted - self._start_row) - len(self._labels)
            self._labels += [phoneset.REST] * pad
            self._agree += [(1, 1)] * pad
            return self._give_out(rows)
        self._decoder.end_utt()
        self._in_utterance = False
        self._vote(self._path(self._decoder.seg()), rows, final=True)
        return self._give_out(rows)


def _join(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate([p[0] for p in parts]).astype(np.int64), np.concatenate([p[1] for p in parts])


def recognize(audio: np.ndarray, delay_ms: int = DEFAULT_DELAY_MS) -> tuple[np.ndarray, np.ndarray]:
    """Labels of every row of a whole ``(n,)`` 16 kHz signal, as a stream would have given them."""
    rec = PhoneRecognizer(delay_ms)
    return _join([rec.push(audio), rec.finish()])
