import numpy as np
import pytest

from sonic_rt import motion
from sonic_rt.blendshapes import JAW_GAP_IOD
from sonic_rt.retarget import to_portrait


def jaw(value: float) -> np.ndarray:
    return motion.make(jaw_open=value)


def test_closed_portrait_keeps_jaw_as_is():
    out = to_portrait(jaw(0.4), own_gap_iod=0.0)
    assert out[motion.INDEX["jaw_open"]] == pytest.approx(0.4)
    assert out[motion.INDEX["mouth_close"]] == 0.0


def test_open_portrait_is_sealed_in_silence_and_opened_beyond_its_own_gap():
    own = 0.1
    silent = to_portrait(jaw(0.0), own)
    assert silent[motion.INDEX["mouth_close"]] == pytest.approx(1.0)
    assert silent[motion.INDEX["jaw_open"]] == 0.0
    half = to_portrait(jaw(0.5 * own / JAW_GAP_IOD), own)
    assert half[motion.INDEX["mouth_close"]] == pytest.approx(0.5)
    wide = to_portrait(jaw(own / JAW_GAP_IOD + 0.2), own)
    assert wide[motion.INDEX["jaw_open"]] == pytest.approx(0.2)
    assert wide[motion.INDEX["mouth_close"]] == 0.0


def test_other_channels_pass_through_and_batches_work():
    seq = np.stack([motion.make(jaw_open=0.3, head_yaw=5.0, smile=0.2)] * 4)
    out = to_portrait(seq, 0.05)
    assert out.shape == seq.shape
    np.testing.assert_array_equal(out[:, motion.INDEX["head_yaw"]], 5.0)
    np.testing.assert_allclose(out[:, motion.INDEX["smile"]], 0.2)
