"""Audio augmentation for training: gain, noise, reverb, EQ and band-limiting by resampling.

Each turns clean speech into something a microphone, a phone line or a room could have
delivered, so that the motion model keys on speech and not on one recording chain.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from ..audio import SAMPLE_RATE


def gain(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x * 10 ** (rng.uniform(-12, 6) / 20)


def noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White or pink noise at 10-40 dB SNR."""
    white = rng.standard_normal(len(x))
    if rng.random() < 0.5:
        spec = np.fft.rfft(white)
        spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
        white = np.fft.irfft(spec, len(x))
    power = np.mean(x**2) + 1e-10
    snr = rng.uniform(10, 40)
    return x + white * np.sqrt(power / (np.mean(white**2) + 1e-12) / 10 ** (snr / 10))


def reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: exponentially decaying noise, RT60 0.15-0.8 s, mixed 20-60 % wet."""
    rt60 = rng.uniform(0.15, 0.8)
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 0.0
    wet = signal.fftconvolve(x, ir)[: len(x)]
    wet *= np.sqrt((np.mean(x**2) + 1e-10) / (np.mean(wet**2) + 1e-10))
    mix = rng.uniform(0.2, 0.6)
    return (1 - mix) * x + mix * wet


def equalise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random tilt and one peak/notch, +-9 dB."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    octave = np.log2(np.maximum(f, 50) / 1000)
    db = rng.uniform(-3, 3) * octave + rng.uniform(-9, 9) * np.exp(-((octave - rng.uniform(-2, 2.5)) ** 2) / 0.5)
    return np.fft.irfft(spec * 10 ** (db / 20), len(x))


def band_limit(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Down to 8, 11.025 or 12 kHz and back up: a phone line or a low-rate recording."""
    low = int(rng.choice([8000, 11025, 12000]))
    return signal.resample_poly(signal.resample_poly(x, low, SAMPLE_RATE), SAMPLE_RATE, low)[: len(x)]


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random chain; every step applied with its own probability. float32 in, float32 out."""
    y = x.astype(np.float64)
    for step, p in ((equalise, 0.5), (reverb, 0.35), (band_limit, 0.25), (noise, 0.5), (gain, 0.9)):
        if rng.random() < p:
            y = step(y, rng)
    if len(y) < len(x):
        y = np.pad(y, (0, len(x) - len(y)))
    return np.clip(y[: len(x)], -1.0, 1.0).astype(np.float32)
