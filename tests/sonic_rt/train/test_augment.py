import numpy as np
import pytest

from sonic_rt.audio import SAMPLE_RATE
from sonic_rt.train import augment


@pytest.fixture
def tone() -> np.ndarray:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (t < 0.6)).astype(np.float32)


@pytest.mark.parametrize("step", [augment.gain, augment.noise, augment.reverb, augment.equalise, augment.band_limit])
def test_each_step_keeps_length_and_changes_the_signal(tone, step):
    out = step(tone.astype(np.float64), np.random.default_rng(0))
    assert len(out) == len(tone) and np.isfinite(out).all()
    assert not np.allclose(out, tone)


def test_chain_is_bounded_float32_and_seeded(tone):
    a = augment.augment(tone, np.random.default_rng(1))
    assert a.dtype == np.float32 and a.shape == tone.shape and np.abs(a).max() <= 1.0
    np.testing.assert_array_equal(a, augment.augment(tone, np.random.default_rng(1)))


def test_band_limit_removes_the_top_band():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SAMPLE_RATE)
    y = augment.band_limit(x, np.random.default_rng(3))
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / SAMPLE_RATE)
    assert spec[f > 6500].sum() < 0.05 * spec[f < 3500].sum()
