import numpy as np

from sonic_rt.motion import vector
from sonic_rt.motion.smoothing import MotionSmoother

YAW, JAW = vector.INDEX["head_yaw"], vector.INDEX["jaw_open"]


def step_input(n: int = 30) -> np.ndarray:
    seq = vector.neutral(n)
    seq[5:, YAW] = 10.0
    seq[5:, JAW] = 0.5
    return seq


def test_head_is_smoothed_causally_and_the_mouth_left_sharp():
    out = MotionSmoother(1.0)(step_input())
    np.testing.assert_array_equal(out[:5], 0.0)  # causal: nothing before the step
    np.testing.assert_array_equal(out[:, JAW], step_input()[:, JAW])
    yaw = out[:, YAW]
    assert 0 < yaw[5] < 5 and np.all(np.diff(yaw[5:]) >= 0) and yaw[20] > 9.5


def test_strength_zero_passes_through_and_two_is_smoother():
    np.testing.assert_array_equal(MotionSmoother(0.0)(step_input()), step_input())
    assert MotionSmoother(2.0)(step_input())[7, YAW] < MotionSmoother(1.0)(step_input())[7, YAW]


def test_chunks_continue_where_the_last_call_ended():
    seq = step_input() + np.random.default_rng(0).standard_normal((30, vector.DIM)).astype(np.float32)
    smoother = MotionSmoother()
    parts = np.concatenate([smoother(seq[:7]), smoother(seq[7:8]), smoother(seq[8:])])
    np.testing.assert_allclose(parts, MotionSmoother()(seq), rtol=0, atol=1e-6)
