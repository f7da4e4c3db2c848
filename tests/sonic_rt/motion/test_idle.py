import numpy as np

from sonic_rt.motion import vector
from sonic_rt.motion.idle import BLINK_INTERVAL_RANGE, IdleMotion, IdleParams, blink_shape


def blink_onsets(seq: np.ndarray) -> np.ndarray:
    closed = seq[:, vector.INDEX["blink_left"]] > 0.5
    return np.flatnonzero(closed[1:] & ~closed[:-1]) + 1


def test_blinks_come_every_two_to_six_seconds():
    seq = IdleMotion(IdleParams(), seed=3).next(25 * 120)
    gaps = np.diff(blink_onsets(seq)) / 25
    lo, hi = BLINK_INTERVAL_RANGE
    assert len(gaps) >= 120 / hi - 1
    assert gaps.min() >= lo - 0.1 and gaps.max() <= hi + 0.3, gaps


def test_both_eyes_close_fully_and_reopen():
    shape = blink_shape(0.2)
    assert shape.max() == 1.0 and shape[-1] < 0.3 and shape[0] > 0


def test_breathing_moves_the_head_slowly():
    seq = IdleMotion(IdleParams(), seed=0).next(25 * 8)
    pitch = seq[:, vector.INDEX["head_pitch"]]
    assert 0.3 < pitch.max() <= IdleParams().breath_pitch + 1e-6
    assert np.abs(np.diff(pitch)).max() < 0.05  # no jumps frame to frame


def test_same_seed_same_motion_in_any_chunking():
    whole = IdleMotion(IdleParams(), seed=7).next(500)
    idle = IdleMotion(IdleParams(), seed=7)
    parts = np.concatenate([idle.next(n) for n in (1, 2, 97, 200, 200)])
    np.testing.assert_array_equal(whole, parts)
    assert not np.array_equal(whole, IdleMotion(IdleParams(), seed=8).next(500))


def test_params_round_trip(tmp_path):
    p = IdleParams(blink_interval=4.2, blink_length=0.25)
    p.save(tmp_path / "idle.json")
    assert IdleParams.load(tmp_path / "idle.json") == p
