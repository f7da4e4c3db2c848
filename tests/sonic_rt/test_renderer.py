import numpy as np
import pytest

from sonic_rt import landmarks as lm
from sonic_rt import motion
from sonic_rt.config import GeometryParams
from sonic_rt.identity import enroll
from sonic_rt.measure import eye_aspect_ratio, mouth_opening, psnr
from sonic_rt.renderer import Renderer

JAW_SWEEP = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@pytest.fixture(scope="module")
def renderer(astronaut_identity):
    return Renderer(astronaut_identity)


def _face_mask(identity):
    import cv2

    mask = np.zeros(identity.plate.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(identity.landmarks[list(lm.FACE_OVAL), :2]).astype(np.int32)], 1)
    return mask.astype(bool)


def _outside_region(identity):
    x0, y0, w, h = identity.roi
    outside = np.ones(identity.plate.shape[:2], bool)
    outside[y0 : y0 + h, x0 : x0 + w] = ~identity.region
    return outside


def test_neutral_reproduces_the_portrait(renderer, astronaut_identity):
    frame = renderer.render(motion.neutral())
    face = _face_mask(astronaut_identity)
    assert psnr(frame[face], astronaut_identity.plate[face]) >= 40.0


@pytest.mark.parametrize(
    "values",
    [{"jaw_open": 1.0}, {"smile": 1.0, "blink_left": 1.0}, {"head_yaw": 20.0, "head_pitch": -15.0},
     {"head_roll": 15.0, "head_x": 0.3, "head_y": -0.3, "brows": 1.0}],
)  # fmt: skip
def test_pixels_outside_the_region_never_change(renderer, astronaut_identity, values):
    frame = renderer.render(motion.make(**values))
    outside = _outside_region(astronaut_identity)
    assert outside.mean() > 0.2  # the test means something: a good part of the frame is outside
    assert np.array_equal(frame[outside], astronaut_identity.plate[outside])
    assert not np.array_equal(frame, astronaut_identity.plate)


def test_jaw_opening_is_measured_monotonically(renderer, analyzer):
    measured = []
    for jaw in JAW_SWEEP:
        points = analyzer.landmarks_only(renderer.render(motion.make(jaw_open=jaw)))
        assert points is not None
        measured.append(mouth_opening(points))
    assert all(b > a for a, b in zip(measured, measured[1:], strict=False)), measured
    assert measured[-1] - measured[0] > 0.25


@pytest.mark.parametrize(
    ("channel", "upper", "lower"),
    [("blink_left", lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER), ("blink_right", lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER)],
)
def test_blink_lowers_the_measured_eye_aspect_ratio(renderer, analyzer, channel, upper, lower):
    open_pts = analyzer.landmarks_only(renderer.render(motion.neutral()))
    closed_pts = analyzer.landmarks_only(renderer.render(motion.make(**{channel: 1.0})))
    ear_open = eye_aspect_ratio(open_pts, upper, lower)
    ear_closed = eye_aspect_ratio(closed_pts, upper, lower)
    assert ear_closed < 0.6 * ear_open, (ear_open, ear_closed)


def test_open_mouth_shows_a_dark_interior_not_lip_texture(renderer, astronaut_identity):
    vec = motion.make(jaw_open=0.6)
    frame = renderer.render(vec)
    points = renderer.deform(vec)
    centre = ((points[lm.UPPER_LIP_CENTER_INNER, :2] + points[lm.LOWER_LIP_CENTER_INNER, :2]) / 2).round().astype(int)
    patch = frame[centre[1] - 1 : centre[1] + 2, centre[0] - 1 : centre[0] + 2].astype(float).mean(axis=(0, 1))
    lip = astronaut_identity.palette[0]
    assert patch.mean() < 0.6 * lip.mean()


def test_head_pose_moves_the_face(renderer, astronaut_identity):
    rest = renderer.landmarks(motion.neutral())
    nose = lm.NOSE_TIP
    assert renderer.landmarks(motion.make(head_yaw=15))[nose, 0] > rest[nose, 0] + 5
    assert renderer.landmarks(motion.make(head_pitch=10))[nose, 1] > rest[nose, 1] + 3
    assert renderer.landmarks(motion.make(head_x=0.2))[nose, 0] == pytest.approx(
        rest[nose, 0] + 0.2 * astronaut_identity.iod, abs=0.01
    )


def test_motion_is_clipped_to_documented_ranges(renderer):
    assert np.array_equal(renderer.deform(motion.make(jaw_open=5.0)), renderer.deform(motion.make(jaw_open=1.0)))


@pytest.mark.shared_data
def test_every_shared_portrait_animates(shared_images, analyzer):
    """On every portrait in ../shared/data/images (paintings included) the mouth opens and the
    neutral frame is the portrait."""
    for path in shared_images:
        identity = enroll(path, GeometryParams(), analyzer)
        renderer = Renderer(identity)
        # speech range: beyond ~0.6 the landmark model itself saturates on some faces
        measured = [
            mouth_opening(analyzer.landmarks_only(renderer.render(motion.make(jaw_open=j)))) for j in (0, 0.3, 0.6)
        ]
        assert measured[0] < measured[1] < measured[2], (path.name, measured)
        assert psnr(renderer.render(motion.neutral()), identity.plate) >= 40.0, path.name
