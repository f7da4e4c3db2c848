import numpy as np
import pytest

from sonic_rt.motion import vector
from sonic_rt.motion.retime import Retimer


def ramp(n: int) -> np.ndarray:
    """Motion whose every channel equals the frame index: easy to read positions back."""
    return np.repeat(np.arange(n, dtype=np.float32)[:, None], vector.DIM, axis=1)


def run(retimer: Retimer, frames: np.ndarray, total: int, chunk: int | None = None) -> np.ndarray:
    chunk = chunk or len(frames)
    parts = [retimer.push(frames[i : i + chunk]) for i in range(0, len(frames), chunk)]
    return np.concatenate([*parts, retimer.finish(total)])


def test_25fps_without_offset_passes_frames_through_exactly():
    m = np.random.default_rng(0).normal(size=(37, vector.DIM)).astype(np.float32)
    out = run(Retimer(25, 0.0), m, 37, chunk=3)
    np.testing.assert_array_equal(out, m)


@pytest.mark.parametrize(("offset_ms", "shift"), [(-40.0, 1), (-80.0, 2), (40.0, -1), (120.0, -3)])
def test_offset_of_whole_frames_selects_frames(offset_ms, shift):
    out = run(Retimer(25, offset_ms), ramp(20), 20, chunk=2)[:, 0]
    expected = np.clip(np.arange(len(out)) + shift, 0, 19)  # held at both ends
    np.testing.assert_array_equal(out, expected)
    assert len(out) == max(20, 20 - shift)  # a positive offset has frames to show past the total


def test_negative_offset_waits_for_the_motion_it_shows():
    r = Retimer(25, -40.0)
    assert len(r.push(ramp(1))) == 0  # frame 0 shows model frame 1, not there yet
    assert r.push(ramp(2)[1:])[:, 0].tolist() == [1.0]


def test_other_frame_rates_interpolate_between_model_frames():
    out = run(Retimer(50, 0.0), ramp(10), 20, chunk=1)[:, 0]
    np.testing.assert_allclose(out[:19], np.arange(19) / 2)
    assert out[19] == 9.0  # past the last model frame: held
    out = run(Retimer(30, -20.0), ramp(12), 14)[:, 0]
    np.testing.assert_allclose(out[:13], np.arange(13) * 25 / 30 + 0.5, atol=1e-5)


@pytest.mark.parametrize("fps", [24, 25, 30, 60])
def test_chunking_does_not_change_the_output(fps):
    m = np.random.default_rng(1).normal(size=(50, vector.DIM)).astype(np.float32)
    whole = run(Retimer(fps, -30.0), m, fps * 2)
    for chunk in (1, 7):
        np.testing.assert_array_equal(run(Retimer(fps, -30.0), m, fps * 2, chunk), whole)


def test_model_frames_for_covers_every_output_frame():
    for fps, offset in ((25, 0.0), (25, -40.0), (30, -40.0), (60, 100.0), (10, 0.0)):
        r = Retimer(fps, offset)
        for total in (1, 2, 25, 61):
            need = r.model_frames_for(total)
            assert np.ceil(float(r.position(total - 1))) < need or need == 1
            assert need >= 1
    assert Retimer(25).model_frames_for(0) == 0


def test_memory_stays_bounded_on_a_long_stream():
    r = Retimer(30, -40.0)
    for _ in range(2000):
        r.push(ramp(3))
    assert len(r._motion) <= 4


@pytest.mark.parametrize(("fps", "offset_ms"), [(25, 0), (25, -40), (30, 0), (30, -40), (50, 20)])
def test_first_output_from_names_the_first_frame_made_only_of_later_model_frames(fps, offset_ms):
    r = Retimer(fps, offset_ms)
    for m in (1, 7, 30):
        k = r.first_output_from(m)
        assert r.position(k) >= m and (k == 0 or r.position(k - 1) < m)
    r.push(vector.neutral(10))
    assert r.first_output_from(0) == r.frames_out  # never a frame already made
