"""The invisible watermark every generated frame carries: a 32-bit payload naming its session.

Spread spectrum on a fixed grid of ``GRID x GRID`` cells over the frame (4 px cells at 512 px).
Each of the ``BITS`` code bits (the payload, then ``CHECK_BITS`` of CRC-32 over it) owns an
equal share of the cells, scattered over the whole frame, and each cell a random sign (the
chip). A bit is read as the correlation of its chips with the frame's *residual*: the luma,
averaged per cell, minus the mean of its 3 x 3 cell neighbourhood (the residual keeps the
watermark's cell-to-cell pattern and drops most of the picture).

Embedding is *informed*: the embedder reads the frame's own correlation for each bit first and
adds just enough of the bit's pattern that the bit reads right with a margin of ``STRENGTH``
grey levels per cell (on average over the bit's cells). A bit the picture already carries costs
nothing; one the picture works against gets more. The pattern is *shaped* by the picture: each
cell's amplitude follows the square root of the local detail around it (``MASK_FLOOR`` grey
levels of residual added, so flat areas keep some), at the same total energy, so the mark hides
in hair and texture rather than showing as grain on a plain background. A frame costs a grey
conversion, a resize, two small blurs, two bincounts and one saturating add (about 1 ms at
512 px). Detection sums the correlations over every frame of a
video, so what a codec blurs away in one frame is won back over many; the check bits make a
wrong or absent payload fail: on video without this watermark the summed signs are random and
all 24 check bits match by chance with probability 2^-24 (6e-8), measured in
``bench/bench_watermark.py``.

The layout is fixed by ``KEY`` and public, like the payload's meaning (a session in the audit
log): the mark makes a video traceable, it is not a secret. It survives re-encoding at the same
framing (JPEG, H.264, VP8, resizing); it does not survive cropping, rotation or mirroring.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .payload import PAYLOAD_BITS
from .payload import new_payload as new_payload  # part of this module's API too

KEY = b"sonic-rt watermark v1"
GRID = 128  # cells per side, whatever the frame size
CHECK_BITS = 24
BITS = PAYLOAD_BITS + CHECK_BITS
CELLS_PER_BIT = GRID * GRID // BITS  # 292; the few cells left over carry nothing
STRENGTH = 2.3  # grey levels of margin per cell that embedding guarantees each bit (PSNR ~40.6 dB)
MASK_FLOOR = 2.0  # grey levels of local detail every cell is granted, so flat areas carry some of the mark
MIN_FRAMES = 1


@dataclass(frozen=True)
class Layout:
    """Which bit each cell carries (``owner``, -1 for none) and its chip sign, both ``(GRID, GRID)``."""

    owner: np.ndarray
    chips: np.ndarray

    def correlate(self, residual: np.ndarray) -> np.ndarray:
        """Per-bit correlation ``(BITS,)`` of a ``(GRID, GRID)`` residual with the chips."""
        used = self.owner >= 0
        return np.bincount(self.owner[used], (residual * self.chips)[used], BITS)


def layout(key: bytes = KEY) -> Layout:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
    cells = rng.permutation(GRID * GRID)
    owner = np.full(GRID * GRID, -1, np.int64)
    owner[cells[: BITS * CELLS_PER_BIT]] = np.repeat(np.arange(BITS), CELLS_PER_BIT)
    chips = rng.choice(np.array([-1.0, 1.0], np.float32), GRID * GRID)
    return Layout(owner.reshape(GRID, GRID), chips.reshape(GRID, GRID))


LAYOUT = layout()


def code_bits(payload: int) -> np.ndarray:
    """The ``(BITS,)`` code word of a payload as signs (+1 for a 1 bit), payload first, then its check."""
    if not 0 <= payload < 2**PAYLOAD_BITS:
        raise ValueError(f"the watermark payload must be a {PAYLOAD_BITS}-bit unsigned integer, got {payload}")
    word = payload << CHECK_BITS | _check(payload)
    bits = (word >> np.arange(BITS - 1, -1, -1)) & 1
    return bits.astype(np.float32) * 2 - 1


def decode_bits(signs: np.ndarray) -> int | None:
    """The payload a ``(BITS,)`` vector of signs carries, or ``None`` when its check bits do not match."""
    word = 0
    for positive in np.asarray(signs) > 0:
        word = word << 1 | int(positive)
    payload = word >> CHECK_BITS
    return payload if word & (2**CHECK_BITS - 1) == _check(payload) else None


def _check(payload: int) -> int:
    return zlib.crc32(payload.to_bytes(PAYLOAD_BITS // 8, "big")) & (2**CHECK_BITS - 1)


def residual(rgb: np.ndarray) -> np.ndarray:
    """The ``(GRID, GRID)`` float32 residual of an RGB uint8 frame: cell means of its luma minus
    their 3 x 3 neighbourhood's mean."""
    cells = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32), (GRID, GRID),
                       interpolation=cv2.INTER_AREA)  # fmt: skip
    return _highpass(cells)


def _highpass(cells: np.ndarray) -> np.ndarray:
    return cells - cv2.blur(cells, (3, 3), borderType=cv2.BORDER_REFLECT)


@functools.lru_cache(maxsize=8)
def _response(height: int, width: int) -> np.ndarray:
    """``(GRID, GRID)``: how much each cell adds to its bit's correlation per grey level of its own
    chip, after the frame-size round trip (nearest-neighbour up, area down) and the residual."""
    unit = np.where(LAYOUT.owner >= 0, LAYOUT.chips, 0).astype(np.float32)
    pattern = cv2.resize(unit, (width, height), interpolation=cv2.INTER_NEAREST)
    return LAYOUT.chips * _highpass(cv2.resize(pattern, (GRID, GRID), interpolation=cv2.INTER_AREA))


class Watermarker:
    """Marks frames with one payload. Stateless between frames; one per session."""

    def __init__(self, payload: int) -> None:
        self.payload = payload
        self._signs = code_bits(payload)
        self._target = STRENGTH * self._signs
        self._used = LAYOUT.owner >= 0
        self._owner = np.where(self._used, LAYOUT.owner, 0)

    def embed(self, rgb: np.ndarray) -> np.ndarray:
        """A marked copy of an ``(H, W, 3)`` uint8 RGB frame."""
        height, width = rgb.shape[:2]
        picture = residual(rgb)
        shape = np.sqrt(np.sqrt(cv2.blur(picture * picture, (5, 5))) + MASK_FLOOR)  # local detail, ^0.5
        shape /= np.sqrt(np.mean(shape[self._used] ** 2))  # the same energy as a flat pattern
        gain = np.bincount(LAYOUT.owner[self._used], (shape * _response(height, width))[self._used], BITS)
        have = LAYOUT.correlate(picture) / gain  # grey levels per cell the picture already gives each bit
        amplitude = self._signs * np.maximum(0.0, STRENGTH - self._signs * have)
        cells = np.where(self._used, LAYOUT.chips * amplitude[self._owner] * shape, 0.0)
        delta = cv2.resize(np.rint(cells).astype(np.int16), (width, height), interpolation=cv2.INTER_NEAREST)
        up = np.clip(delta, 0, 255).astype(np.uint8)
        down = np.clip(-delta, 0, 255).astype(np.uint8)
        return cv2.subtract(cv2.add(rgb, cv2.merge([up, up, up])), cv2.merge([down, down, down]))


@dataclass(frozen=True)
class Detection:
    """What ``detect`` read: ``payload`` (``None``: no valid watermark) from ``frames`` frames.

    ``strength`` is the median over bits of the summed correlation in units of its noise
    (measured on decoy chips the embedder never used); ``bit_errors_if`` tells, for a known
    payload, how many bits were read wrong."""

    payload: int | None
    frames: int
    strength: float
    signs: np.ndarray

    @property
    def found(self) -> bool:
        return self.payload is not None

    def bit_errors_if(self, payload: int) -> int:
        return int(np.sum(self.signs != code_bits(payload)))


class Detector:
    """Sums frames' per-bit correlations; ``result()`` reads the payload from what it has seen."""

    def __init__(self) -> None:
        self.frames = 0
        self._sum = np.zeros((GRID, GRID), np.float64)
        self._decoy = layout(KEY + b" decoy")

    def add(self, rgb: np.ndarray) -> None:
        self._sum += residual(rgb)
        self.frames += 1

    def result(self) -> Detection:
        if self.frames < MIN_FRAMES:
            return Detection(None, 0, 0.0, np.zeros(BITS, np.float32))
        values = LAYOUT.correlate(self._sum)
        noise = float(np.std(self._decoy.correlate(self._sum))) or 1.0
        signs = np.where(values > 0, 1.0, -1.0).astype(np.float32)
        return Detection(decode_bits(signs), self.frames, float(np.median(np.abs(values)) / noise), signs)


def detect(frames: Iterable[np.ndarray]) -> Detection:
    detector = Detector()
    for frame in frames:
        detector.add(frame)
    return detector.result()


def detect_video(path: str | Path, max_seconds: float | None = None) -> Detection:
    """Read the watermark of a video file (any container and codec ffmpeg reads), from its first
    ``max_seconds`` (default: all of it)."""
    import av

    from ..errors import UnreadableVideo

    detector = Detector()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UnreadableVideo(f"{path} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if max_seconds is not None and frame.time is not None and frame.time >= max_seconds:
                    break
                detector.add(frame.to_ndarray(format="rgb24"))
    except (av.error.FFmpegError, OSError) as err:
        raise UnreadableVideo(f"cannot read {path} as a video: {err}") from None
    return detector.result()
