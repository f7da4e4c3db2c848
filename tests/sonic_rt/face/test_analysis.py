import cv2
import numpy as np
import pytest

from sonic_rt.config import GeometryParams
from sonic_rt.errors import FaceCutOff, FaceTooSmall, NoFace, UnreadableImage
from sonic_rt.face.analysis import MIN_FACE_PX, FaceAnalysis, _check_usable
from sonic_rt.face.landmarks import N_LANDMARKS
from sonic_rt.render.identity import enroll


def test_finds_the_face(analyzer, astronaut):
    face = analyzer.analyze(astronaut)
    assert face.landmarks.shape == (N_LANDMARKS, 3)
    x0, y0, x1, y1 = face.box
    assert 160 < x0 < 200 and 250 < x1 < 290 and 50 < y0 < 90 and 160 < y1 < 200
    assert face.n_faces == 1 and face.notes == []


def test_several_faces_takes_largest_and_says_so(analyzer, astronaut):
    face_crop = astronaut[20:260, 110:350]
    canvas = np.full((360, 640, 3), 200, np.uint8)
    canvas[20:320, 10:310] = cv2.resize(face_crop, (300, 300))
    canvas[60:280, 380:600] = cv2.resize(face_crop, (220, 220))[:, ::-1]
    face = analyzer.analyze(canvas)
    assert face.n_faces == 2
    assert face.box[2] < 320  # the big one, on the left
    assert "2 faces found; using the largest" in face.notes


@pytest.mark.parametrize("image", ["flat", "noise"])
def test_no_face(analyzer, image):
    rng = np.random.default_rng(0)
    img = np.full((300, 300, 3), 90, np.uint8) if image == "flat" else rng.integers(0, 255, (300, 300, 3), np.uint8)
    with pytest.raises(NoFace):
        analyzer.analyze(img)


def test_face_too_small(analyzer, astronaut):
    canvas = np.full((300, 300, 3), 128, np.uint8)
    canvas[100:190, 100:190] = cv2.resize(astronaut, (90, 90), interpolation=cv2.INTER_AREA)
    with pytest.raises(FaceTooSmall, match=f"at least {MIN_FACE_PX} px"):
        analyzer.analyze(canvas)


@pytest.mark.parametrize(
    ("crop", "side"),
    [((slice(None), slice(0, 240)), "right"), ((slice(80, None), slice(None)), "top"),
     ((slice(0, 160), slice(None)), "bottom")],
)  # fmt: skip
def test_face_cut_off(analyzer, astronaut, crop, side):
    with pytest.raises(FaceCutOff, match=side):
        analyzer.analyze(np.ascontiguousarray(astronaut[crop]))


def test_cut_off_rule_names_every_side():
    pts = np.zeros((N_LANDMARKS, 3), np.float32)
    pts[:, 0] = np.linspace(-20, 120, N_LANDMARKS)
    pts[:, 1] = np.linspace(10, 90, N_LANDMARKS)
    face = FaceAnalysis(landmarks=pts, box=(-20, 10, 120, 90), n_faces=1, image_size=(100, 100))
    with pytest.raises(FaceCutOff, match="left, right"):
        _check_usable(face)


def test_enroll_rejects_unreadable_bytes(analyzer):
    with pytest.raises(UnreadableImage):
        enroll(b"\x89PNG\r\n\x1a\n broken", GeometryParams(), analyzer)
