import cv2
import numpy as np
import pytest

from sonic_rt.face import landmarks as lm
from sonic_rt.render import body, layers


def _oval(identity):
    return identity.landmarks[list(lm.FACE_OVAL), :2]


@pytest.fixture(scope="module")
def probability(astronaut_identity, analyzer):
    return analyzer.segment_person(astronaut_identity.plate)


def test_segmentation_finds_the_astronaut(probability, astronaut_identity):
    assert probability.shape == (512, 512) and probability.dtype == np.float32
    assert layers.face_cover(probability, _oval(astronaut_identity)) > 0.95
    assert probability[:60, 440:].mean() < 0.05  # the shuttle's corner of the frame is background


def test_matte_covers_the_person_and_not_the_background(astronaut_identity, probability):
    soft = layers.refine_matte(astronaut_identity.plate, probability, _oval(astronaut_identity))
    assert soft.dtype == np.float32 and soft.min() >= 0.0 and soft.max() <= 1.0
    assert layers.face_cover(soft, _oval(astronaut_identity)) > 0.98
    assert soft[:60, 440:].max() < 0.05
    # soft only at the edge: most pixels are plainly person or plainly background
    assert ((soft > 0.05) & (soft < 0.95)).mean() < 0.05


def test_matte_keeps_only_what_is_attached_to_the_face(astronaut_identity):
    prob = np.zeros((512, 512), np.float32)
    cv2.fillPoly(prob, [np.round(_oval(astronaut_identity)).astype(np.int32)], 1.0)
    prob[10:60, 10:60] = 1.0  # a blob far from the face
    soft = layers.refine_matte(astronaut_identity.plate, prob, _oval(astronaut_identity))
    assert soft[20:50, 20:50].max() < 0.05
    assert layers.face_cover(soft, _oval(astronaut_identity)) > 0.9


def test_the_fill_comes_from_the_background_around():
    """A grey-ramp wall with a red disc on it: the disc's place is filled with the wall's greys,
    close to what the wall would be there, and nothing of the red."""
    ys, xs = np.mgrid[0:256, 0:256]
    wall = np.repeat((60 + 0.5 * xs)[..., None], 3, axis=2)
    image = wall.copy()
    disc = (xs - 128) ** 2 + (ys - 128) ** 2 < 50**2
    image[disc] = (230, 20, 20)
    image = image.astype(np.uint8)
    filled = layers.fill_background(image, disc)
    assert np.array_equal(filled[~disc], image[~disc])
    got = filled[disc].astype(float)
    assert np.abs(got[:, 0] - got[:, 1]).max() < 3  # grey, not red
    assert np.abs(got[:, 0] - wall[disc][:, 0]).mean() < 12


def test_person_over_plate_at_rest_is_the_portrait(astronaut_identity):
    ident = astronaut_identity
    person = layers.person_layer(ident.plate, ident.matte, ident.background)
    assert person.shape == (512, 512, 4) and person.dtype == np.uint8
    rest = layers.composite(person, ident.background)
    assert np.abs(rest.astype(int) - ident.plate.astype(int)).max() <= 1


def test_where_the_person_is_not_the_plate_shows_bit_for_bit(astronaut_identity):
    ident = astronaut_identity
    empty = np.zeros((512, 512, 4), np.uint8)
    empty[..., 3] = 255
    assert np.array_equal(layers.composite(empty, ident.background), ident.background)


def test_explaining_alpha_explains_the_image():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    background = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    alpha = layers.explaining_alpha(image, background)
    # with that alpha, the colour laid over the background is a real colour (0..255)
    a = np.maximum(alpha, 1e-6)[..., None]
    colour = (image - (1 - a) * background) / a
    assert colour.min() > -0.5 and colour.max() < 255.5
    assert np.array_equal(layers.explaining_alpha(image, image), np.zeros((64, 64), np.float32))


def test_the_plate_behind_the_person_is_filled(astronaut_identity):
    ident = astronaut_identity
    hole = ident.matte > layers.HOLE_LEVEL
    assert np.array_equal(ident.background[~hole], ident.plate[~hole])
    # behind the face there is no face: the fill is far from the skin it replaces
    face = np.zeros((512, 512), np.uint8)
    cv2.fillPoly(face, [np.round(_oval(ident)).astype(np.int32)], 1)
    differs = np.abs(ident.background.astype(int) - ident.plate.astype(int)).sum(axis=2) > 30
    assert differs[face > 0].mean() > 0.5


def test_no_person_means_no_layers(astronaut_identity):
    head = body.HeadNeck.from_landmarks(astronaut_identity.landmarks, astronaut_identity.centre)
    none = np.zeros((512, 512), np.float32)
    assert layers.build(astronaut_identity.plate, none, _oval(astronaut_identity), head) is None
