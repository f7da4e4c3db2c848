import itertools

import cv2
import numpy as np
import pytest

from sonic_rt.config import GeometryParams
from sonic_rt.face import landmarks as lm
from sonic_rt.measure import eye_aspect_ratio, mouth_opening, psnr
from sonic_rt.motion import vector
from sonic_rt.render.body import GRID_STEP, HeadNeck
from sonic_rt.render.identity import enroll
from sonic_rt.render.renderer import Renderer

JAW_SWEEP = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@pytest.fixture(scope="module")
def renderer(astronaut_identity):
    return Renderer(astronaut_identity)


@pytest.fixture(scope="module")
def one_picture(astronaut_identity):
    """The renderer without layers: the portrait warped as one picture (the fallback)."""
    return Renderer(astronaut_identity, layers=False)


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


@pytest.mark.parametrize("layers", [True, False])
def test_neutral_reproduces_the_portrait(astronaut_identity, layers):
    renderer = Renderer(astronaut_identity, layers=layers)
    assert renderer.layered == layers
    frame = renderer.render(vector.neutral())
    face = _face_mask(astronaut_identity)
    assert psnr(frame[face], astronaut_identity.plate[face]) >= 40.0
    assert psnr(frame, astronaut_identity.plate) >= 40.0  # the whole frame too: hair, edges, background


def _background(identity):
    """Pixels no pose can bring the person to: farther from the matte's moving part than the
    farthest any of it moves (``HeadNeck.reach``, plus a margin), and from its still part than
    the head-and-neck field's grid step (the field is interpolated over it)."""
    head = HeadNeck.from_landmarks(identity.landmarks, identity.centre, identity.matte)
    ys, xs = np.nonzero(identity.matte > 0)
    points = np.stack([xs, ys], axis=1).astype(float)
    moving = head.weight(points) > 0
    reach = int(np.ceil(head.reach(points[moving][::20]))) + 4
    near = np.zeros(identity.matte.shape, np.uint8)
    near[ys[moving], xs[moving]] = 1
    near = cv2.dilate(near, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))
    still = cv2.dilate((identity.matte > 0).astype(np.uint8), np.ones((2 * GRID_STEP + 1,) * 2, np.uint8))
    return (still == 0) & (near == 0)


_SPANS = [(vector.LOW[vector.INDEX[c]], 0.0, vector.HIGH[vector.INDEX[c]]) for c in vector.HEAD_CHANNELS]
POSES = [dict(zip(vector.HEAD_CHANNELS, corner, strict=True)) for corner in itertools.product(*_SPANS)]


@pytest.fixture(scope="module")
def wide_identity(astronaut, analyzer):
    """The astronaut with a wide margin (``expand_ratio`` 1): flag and shuttle around her."""
    return enroll(astronaut, GeometryParams(expand_ratio=1.0), analyzer)


def test_background_is_the_plate_under_every_head_pose(wide_identity):
    """Every corner, edge and face of the allowed head-pose box (3^5 poses), with expressions:
    the background never moves, bit for bit, though the person does."""
    renderer = Renderer(wide_identity)
    background = _background(wide_identity)
    assert background.mean() > 0.1  # the test means something: a good part of the frame is background
    plate = wide_identity.background
    rng = np.random.default_rng(0)
    for pose in POSES:
        vec = vector.make(**pose, jaw_open=rng.uniform(0, 1), smile=rng.uniform(-1, 1), blink_left=rng.uniform(0, 1))
        frame = renderer.render(vec)
        assert np.array_equal(frame[background], plate[background]), pose
    assert not np.array_equal(renderer.render(vector.make(head_roll=10)), renderer.render(vector.neutral()))


@pytest.mark.parametrize(
    "values",
    [{"jaw_open": 1.0}, {"smile": 1.0, "blink_left": 1.0}, {"head_yaw": 20.0, "head_pitch": -15.0},
     {"head_roll": 15.0, "head_x": 0.3, "head_y": -0.3, "brows": 1.0}],
)  # fmt: skip
def test_one_picture_pixels_outside_the_region_never_change(one_picture, astronaut_identity, values):
    frame = one_picture.render(vector.make(**values))
    outside = _outside_region(astronaut_identity)
    assert outside.mean() > 0.2  # the test means something: a good part of the frame is outside
    assert np.array_equal(frame[outside], astronaut_identity.plate[outside])
    assert not np.array_equal(frame, astronaut_identity.plate)


def test_hair_moves_with_the_head(renderer, astronaut_identity):
    """The hair above the forehead follows a roll as one piece with the face: where the rest
    frame had it, the rolled frame has it where the rotation about the head centre puts it."""
    ident = astronaut_identity
    top = ident.landmarks[lm.FOREHEAD_TOP, :2]
    x, y = np.round(top - [0, 0.5 * ident.iod]).astype(int)  # in the hair, above the hairline
    rest = renderer.render(vector.neutral())
    rolled = renderer.render(vector.make(head_roll=10))
    head = HeadNeck.from_landmarks(ident.landmarks, ident.centre, ident.matte)
    a, b = head.rigid(*renderer._pose(vector.make(head_roll=10).astype(float)))
    tx, ty = np.round(a @ [x, y] + b).astype(int)
    patch = rest[y - 3 : y + 4, x - 3 : x + 4].astype(float)
    moved = rolled[ty - 3 : ty + 4, tx - 3 : tx + 4].astype(float)
    stayed = rolled[y - 3 : y + 4, x - 3 : x + 4].astype(float)
    assert (abs(tx - x) + abs(ty - y)) > 5
    assert np.abs(moved - patch).mean() < np.abs(stayed - patch).mean()


def test_jaw_opening_is_measured_monotonically(renderer, analyzer):
    measured = []
    for jaw in JAW_SWEEP:
        points = analyzer.landmarks_only(renderer.render(vector.make(jaw_open=jaw)))
        assert points is not None
        measured.append(mouth_opening(points))
    assert all(b > a for a, b in zip(measured, measured[1:], strict=False)), measured
    assert measured[-1] - measured[0] > 0.25


@pytest.mark.parametrize(
    ("channel", "upper", "lower"),
    [("blink_left", lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER), ("blink_right", lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER)],
)
def test_blink_lowers_the_measured_eye_aspect_ratio(renderer, analyzer, channel, upper, lower):
    open_pts = analyzer.landmarks_only(renderer.render(vector.neutral()))
    closed_pts = analyzer.landmarks_only(renderer.render(vector.make(**{channel: 1.0})))
    ear_open = eye_aspect_ratio(open_pts, upper, lower)
    ear_closed = eye_aspect_ratio(closed_pts, upper, lower)
    assert ear_closed < 0.6 * ear_open, (ear_open, ear_closed)


def test_open_mouth_shows_a_dark_interior_not_lip_texture(renderer, astronaut_identity):
    vec = vector.make(jaw_open=0.6)
    frame = renderer.render(vec)
    points = renderer.deform(vec)
    centre = ((points[lm.UPPER_LIP_CENTER_INNER, :2] + points[lm.LOWER_LIP_CENTER_INNER, :2]) / 2).round().astype(int)
    patch = frame[centre[1] - 1 : centre[1] + 2, centre[0] - 1 : centre[0] + 2].astype(float).mean(axis=(0, 1))
    lip = astronaut_identity.palette[0]
    assert patch.mean() < 0.6 * lip.mean()


def test_head_pose_moves_the_face(renderer, astronaut_identity):
    rest = renderer.landmarks(vector.neutral())
    nose = lm.NOSE_TIP
    assert renderer.landmarks(vector.make(head_yaw=15))[nose, 0] > rest[nose, 0] + 5
    assert renderer.landmarks(vector.make(head_pitch=10))[nose, 1] > rest[nose, 1] + 3
    assert renderer.landmarks(vector.make(head_x=0.2))[nose, 0] == pytest.approx(
        rest[nose, 0] + 0.2 * astronaut_identity.iod, abs=0.01
    )


def test_motion_is_clipped_to_documented_ranges(renderer):
    assert np.array_equal(renderer.deform(vector.make(jaw_open=5.0)), renderer.deform(vector.make(jaw_open=1.0)))


@pytest.mark.shared_data
def test_every_shared_portrait_animates(shared_images, analyzer):
    """On every portrait in ../shared/data/images (paintings included) the mouth opens and the
    neutral frame is the portrait."""
    for path in shared_images:
        identity = enroll(path, GeometryParams(), analyzer)
        renderer = Renderer(identity)
        # speech range: beyond ~0.6 the landmark model itself saturates on some faces
        measured = [
            mouth_opening(analyzer.landmarks_only(renderer.render(vector.make(jaw_open=j)))) for j in (0, 0.3, 0.6)
        ]
        assert measured[0] < measured[1] < measured[2], (path.name, measured)
        assert psnr(renderer.render(vector.neutral()), identity.plate) >= 40.0, path.name


@pytest.mark.shared_data
def test_every_shared_portrait_keeps_its_background(shared_images, analyzer):
    """On every portrait in ../shared/data/images (paintings included) segmentation finds the
    person, and at every corner of the head-pose box the background is the plate's, bit for bit."""
    for path in shared_images:
        identity = enroll(path, GeometryParams(), analyzer)
        assert identity.layered, (path.name, identity.notes)
        renderer = Renderer(identity)
        background = _background(identity)
        for corner in itertools.product(*[(lo, hi) for lo, _, hi in _SPANS]):
            frame = renderer.render(vector.make(**dict(zip(vector.HEAD_CHANNELS, corner, strict=True))))
            assert np.array_equal(frame[background], identity.background[background]), (path.name, corner)
