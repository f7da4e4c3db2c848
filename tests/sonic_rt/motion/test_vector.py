import numpy as np
import pytest

from sonic_rt.motion import vector


def test_channels_are_named_and_unique():
    assert len(set(vector.NAMES)) == vector.DIM >= 15
    for ch in vector.CHANNELS:
        assert ch.low < ch.high and ch.doc


def test_required_vocabulary_is_present():
    needed = {"jaw_open", "lip_width", "lip_round", "upper_lip", "lower_lip", "smile", "blink_left",
              "blink_right", "brows", "head_yaw", "head_pitch", "head_roll", "head_x", "head_y"}  # fmt: skip
    assert needed <= set(vector.NAMES)


def test_make_and_dict_round_trip():
    vec = vector.make(jaw_open=0.5, head_yaw=-3)
    assert vector.to_dict(vec)["jaw_open"] == 0.5 and vector.to_dict(vec)["head_yaw"] == -3
    with pytest.raises(KeyError, match="unknown motion channel"):
        vector.make(mouth_open=1)


def test_arkit_mapping():
    shapes = vector.to_arkit(vector.make(jaw_open=0.4, blink_left=1, smile=-0.5, brows=0.3, lip_width=-1))
    assert shapes["jawOpen"] == pytest.approx(0.4) and shapes["eyeBlinkLeft"] == 1 and shapes["eyeBlinkRight"] == 0
    assert shapes["mouthSmileLeft"] == 0 and shapes["mouthFrownRight"] == pytest.approx(0.5)
    assert shapes["browInnerUp"] == pytest.approx(0.3) and shapes["browDownLeft"] == 0
    assert shapes["mouthStretchLeft"] == 0
    assert all(0 <= v <= 1 for v in shapes.values())


def test_clip():
    vec = vector.clip(np.full(vector.DIM, 100.0, np.float32))
    assert np.array_equal(vec, vector.HIGH)
