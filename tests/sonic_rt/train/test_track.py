import numpy as np
import pytest

from sonic_rt.face import landmarks as lm
from sonic_rt.motion import vector
from sonic_rt.render.blendshapes import JAW_GAP_IOD, rotation
from sonic_rt.render.renderer import Renderer
from sonic_rt.train import track


@pytest.mark.parametrize("ypr", [(10.0, 5.0, -3.0), (-15.0, 2.0, 7.0), (0.0, -12.0, 0.0)])
def test_euler_angles_invert_the_renderers_rotation(ypr):
    np.testing.assert_allclose(track.euler_from_rotation(rotation(*ypr)), ypr, atol=1e-6)


def test_head_pose_is_recovered_from_rotated_landmarks(astronaut_identity):
    rest = astronaut_identity.landmarks.astype(np.float64)
    centre = rest.mean(axis=0)
    yaws = np.linspace(-10, 10, 21)
    seq = np.stack([(rest - centre) @ rotation(y, 0.5 * y, -0.3 * y).T + centre for y in yaws])
    out = track.motion_targets(seq)
    np.testing.assert_allclose(out[:, vector.INDEX["head_yaw"]], yaws, atol=0.3)
    np.testing.assert_allclose(out[:, vector.INDEX["head_pitch"]], 0.5 * yaws, atol=0.3)
    np.testing.assert_allclose(out[:, vector.INDEX["head_roll"]], -0.3 * yaws, atol=0.3)
    # the face itself did not change shape
    assert np.abs(out[:, vector.INDEX["lip_width"]]).max() < 0.05


def test_jaw_is_tracked_as_absolute_lip_gap(astronaut_identity):
    ident = astronaut_identity
    renderer = Renderer(ident)
    jaws = np.concatenate([np.linspace(0, 0.6, 12), np.linspace(0.6, 0, 12)])
    seq = []
    for j in jaws:
        pts = ident.landmarks.astype(np.float64).copy()
        pts[: lm.N_MESH, :2] = renderer.landmarks(vector.make(jaw_open=j))
        seq.append(pts)
    out = track.motion_targets(np.stack(seq))
    expected = ident.own_gap / ident.iod / JAW_GAP_IOD + jaws
    np.testing.assert_allclose(out[:, vector.INDEX["jaw_open"]], expected, atol=0.05)


def test_short_gaps_are_filled_and_long_ones_stay_invalid():
    values = np.arange(40, dtype=np.float64)[:, None].repeat(3, axis=1)
    values[5:8] = np.nan  # 3 frames: filled
    values[20:30] = np.nan  # 10 frames: too long
    filled, valid = track.fill_gaps(values)
    np.testing.assert_allclose(filled[5:8, 0], [5, 6, 7])
    assert valid[5:8].all() and not valid[20:30].any() and valid[:5].all()


def test_blink_statistics_count_blinks():
    blinks = np.zeros(250)
    for start in (20, 100, 190):
        blinks[start : start + 4] = 1.0
    stats = track.blink_statistics(blinks)
    assert stats["count"] == 3 and stats["seconds"] == 10.0
    assert stats["length_median"] == pytest.approx(0.16)
