import numpy as np
import pytest

from sonic_rt.motion import vector
from sonic_rt.render.blendshapes import JAW_GAP_IOD
from sonic_rt.render.retarget import to_portrait


def jaw(value: float) -> np.ndarray:
    return vector.make(jaw_open=value)


def test_closed_portrait_keeps_jaw_as_is():
    out = to_portrait(jaw(0.4), own_gap_iod=0.0)
    assert out[vector.INDEX["jaw_open"]] == pytest.approx(0.4)
    assert out[vector.INDEX["mouth_close"]] == 0.0


def test_open_portrait_is_sealed_in_silence_and_opened_beyond_its_own_gap():
    own = 0.1
    silent = to_portrait(jaw(0.0), own)
    assert silent[vector.INDEX["mouth_close"]] == pytest.approx(1.0)
    assert silent[vector.INDEX["jaw_open"]] == 0.0
    half = to_portrait(jaw(0.5 * own / JAW_GAP_IOD), own)
    assert half[vector.INDEX["mouth_close"]] == pytest.approx(0.5)
    wide = to_portrait(jaw(own / JAW_GAP_IOD + 0.2), own)
    assert wide[vector.INDEX["jaw_open"]] == pytest.approx(0.2)
    assert wide[vector.INDEX["mouth_close"]] == 0.0


def test_other_channels_pass_through_and_batches_work():
    seq = np.stack([vector.make(jaw_open=0.3, head_yaw=5.0, smile=0.2)] * 4)
    out = to_portrait(seq, 0.05)
    assert out.shape == seq.shape
    np.testing.assert_array_equal(out[:, vector.INDEX["head_yaw"]], 5.0)
    np.testing.assert_allclose(out[:, vector.INDEX["smile"]], 0.2)
