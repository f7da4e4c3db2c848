"""Log-mel features of 16 kHz audio, computed incrementally as samples arrive.

Mel frame ``k`` covers samples ``[(k + 1) * HOP - WIN, (k + 1) * HOP)``, samples before 0 being
zeros: it is ready as soon as ``(k + 1) * HOP`` samples exist, and video frame ``n`` owns mel frames
``4n .. 4n + 3``. Each frame: periodic Hann window, zero-padded to ``N_FFT``, power spectrum,
80 Slaney mel filters (0-8 kHz, area-normalised), ``log10(max(mel, 1e-8))``.

``log_mel`` of a whole signal is a ``LogMelStream`` fed in one piece, and every frame's value is
independent of the other frames computed with it, so streaming and offline agree bit for bit.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import HOP, N_FFT, N_MELS, SAMPLE_RATE, WIN

LOG_FLOOR = 1e-8
SILENCE_LOG_MEL = float(np.log10(LOG_FLOOR))  # every bin of digital silence
BLOCK_FRAMES = 1024  # frames transformed at once: bounds memory on long signals


def mel_filters(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters on the Slaney mel scale from 0 Hz to Nyquist,
    each scaled to unit area in Hz (librosa's ``filters.mel(htk=False, norm="slaney")``)."""
    hz_per_mel, f_break = 200.0 / 3.0, 1000.0  # linear below 1 kHz (15 mel), logarithmic above
    mel_break, log_step = f_break / hz_per_mel, np.log(6.4) / 27.0

    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        return np.where(hz < f_break, hz / hz_per_mel, mel_break + np.log(np.maximum(hz, f_break) / f_break) / log_step)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        return np.where(mel < mel_break, mel * hz_per_mel, f_break * np.exp((mel - mel_break) * log_step))

    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(np.float64(sample_rate / 2)), n_mels + 2))  # (n_mels + 2,)
    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)  # centre frequency of each FFT bin
    rising = (bins - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    falling = (edges[2:, None] - bins) / (edges[2:] - edges[1:-1])[:, None]
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return triangles * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def _taps(filters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each filter as its span of bins: ``(n_mels, taps)`` bin indices and weights (zero-padded)."""
    nonzero = filters > 0
    first = nonzero.argmax(axis=1)
    span = filters.shape[1] - nonzero[:, ::-1].argmax(axis=1) - first
    offsets = np.arange(span.max())
    bins = np.minimum(first[:, None] + offsets, filters.shape[1] - 1)
    weights = np.where(offsets < span[:, None], np.take_along_axis(filters, bins, axis=1), 0.0)
    return bins.T.copy(), weights.T.copy()


WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN) / WIN)  # periodic Hann, (WIN,)
MEL_FILTERS = mel_filters()  # (N_MELS, N_FFT // 2 + 1)
_TAP_BINS, _TAP_WEIGHTS = _taps(MEL_FILTERS)  # (taps, N_MELS) each


def frames_to_log_mel(frames: np.ndarray) -> np.ndarray:
    """``(k, WIN)`` float32 sample windows -> ``(k, N_MELS)`` float32 log-mel.

    The filter bank is applied as a fixed-order sum over each filter's bins rather than a matrix
    product: BLAS may round a row differently depending on how many rows share the call, which
    would make streamed and offline features differ in the last bit.
    """
    windowed = frames.astype(np.float64)  # (k, WIN), contiguous even when frames are overlapping views
    windowed *= WINDOW
    spectrum = np.fft.rfft(windowed, n=N_FFT)  # (k, N_FFT // 2 + 1), zero-padded after WIN
    power = np.ascontiguousarray((spectrum.real**2 + spectrum.imag**2).T)  # (N_FFT // 2 + 1, k)
    mel = np.zeros((N_MELS, len(frames)))
    for bins, weights in zip(_TAP_BINS, _TAP_WEIGHTS, strict=True):
        mel += power[bins] * weights[:, None]
    return np.log10(np.maximum(mel.T, LOG_FLOOR)).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Whole ``(n,)`` 16 kHz signal -> ``(n // HOP, N_MELS)`` float32 log-mel."""
    return LogMelStream().push(audio)


class LogMelStream:
    """Log-mel frames of a signal that arrives in pieces.

    Keeps only the last ``WIN - HOP`` samples plus an unfinished hop, so each push costs in
    proportion to the samples it brings.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start a new signal at sample 0."""
        self._tail = np.zeros(WIN - HOP, np.float32)  # samples [frames_done * HOP - (WIN - HOP), received)
        self._frames_done = 0

    @property
    def frames_done(self) -> int:
        """Mel frames returned so far."""
        return self._frames_done

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Append ``(n,)`` 16 kHz samples; return the ``(k, N_MELS)`` float32 frames now complete (k may be 0)."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"expected (n,) samples, got shape {samples.shape}")
        buf = np.concatenate([self._tail, samples])
        n = (len(buf) - (WIN - HOP)) // HOP
        if n == 0:
            self._tail = buf
            return np.zeros((0, N_MELS), np.float32)
        windows = sliding_window_view(buf, WIN)[::HOP][:n]  # (n, WIN) views, frame k ends at (k + 1) * HOP
        out = np.concatenate([frames_to_log_mel(windows[i : i + BLOCK_FRAMES]) for i in range(0, n, BLOCK_FRAMES)])
        self._tail = buf[n * HOP :].copy()
        self._frames_done += n
        return out
