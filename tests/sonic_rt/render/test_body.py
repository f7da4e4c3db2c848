import numpy as np
import pytest

from sonic_rt.face import landmarks as lm
from sonic_rt.render import blendshapes, body


@pytest.fixture(scope="module")
def head(astronaut_identity):
    return body.HeadNeck.from_landmarks(astronaut_identity.landmarks, astronaut_identity.centre)


def _along(head, u, below_chin):
    """Points ``u`` IOD sideways of the face's midline, ``below_chin`` IOD under the chin."""
    u, v = np.broadcast_arrays(np.asarray(u, float), np.asarray(below_chin, float))
    return head.origin + (u[..., None] * head.across + (v[..., None] + head.chin / head.iod) * head.down) * head.iod


def test_the_head_moves_as_one_piece_and_the_shoulders_stay(head, astronaut_identity):
    face = astronaut_identity.landmarks[: lm.N_MESH, :2]
    assert (head.weight(face) == 1.0).all()
    # hair beside the face and above the head is head
    assert (head.weight(_along(head, [-2.0, 2.0, 0.0], [-1.0, -1.0, -3.5])) == 1.0).all()
    # shoulders: beside the neck, below the chin
    assert (head.weight(_along(head, [-2.5, 2.5], [1.0, 1.0])) == 0.0).all()
    assert head.weight(_along(head, [0.0], [2.0]))[0] == 0.0  # the chest


def test_the_motion_fades_down_the_neck(head):
    down = head.weight(_along(head, 0.0, np.linspace(-0.5, 2.0, 60)))
    assert down[0] == 1.0 and down[-1] == 0.0
    assert (np.diff(down) <= 1e-12).all()
    assert 0.2 < down[np.searchsorted(np.linspace(-0.5, 2.0, 60), 0.6)] < 0.8  # mid-neck: part of it


def test_the_field_is_continuous(head):
    ys, xs = np.mgrid[0:512:2, 0:512:2]
    w = head.weight(np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(float)).reshape(xs.shape)
    # no jumps: every fade from 1 to 0 takes at least 25 px (a smoothstep's steepest is 1.5 / length)
    assert np.abs(np.diff(w, axis=0)).max() < 0.12 and np.abs(np.diff(w, axis=1)).max() < 0.12


@pytest.mark.parametrize("pose", [(20, 0, 0, 0, 0), (0, -15, 0, 0, 0.3), (-20, 15, 15, -0.3, -0.3), (5, 3, -8, 0.1, 0)])
def test_inverse_undoes_the_field(head, pose):
    yaw, pitch, roll, x, y = pose
    a, b = head.rigid(blendshapes.rotation(yaw, pitch, roll), np.array([x, y]) * head.iod)
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 511, (4000, 2))
    q = head.forward(p, a, b)
    back = head.inverse(q, a, b)
    rigid = head.weight(p) == 1.0
    assert np.abs(back[rigid] - p[rigid]).max() < 1e-6  # exact where the head moves as a piece
    # elsewhere a point found is one that lands there (where the field folds, the head's)
    miss = np.linalg.norm(head.forward(back, a, b) - q, axis=1)
    assert np.percentile(miss, 99) < 0.25 and miss.max() < 1.0


def test_backward_map_is_the_inverse_on_pixels(head):
    a, b = head.rigid(blendshapes.rotation(8, -5, 6), np.array([0.1, -0.2]) * head.iod)
    roi = (40, 30, 400, 450)
    map_x, map_y = head.backward_map(a, b, roi)
    assert map_x.shape == map_y.shape == (450, 400)
    ys, xs = np.mgrid[30:480:7, 40:440:7]
    exact = head.inverse(np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(float), a, b)
    got = np.stack([map_x[ys - 30, xs - 40], map_y[ys - 30, xs - 40]], axis=-1).reshape(-1, 2)
    err = np.linalg.norm(got - exact, axis=1)
    assert np.median(err) < 0.05 and err.max() < 1.0


def test_at_rest_the_map_is_the_identity(head):
    a, b = head.rigid(np.eye(3), np.zeros(2))
    map_x, map_y = head.backward_map(a, b, (0, 0, 512, 512))
    ys, xs = np.mgrid[0:512, 0:512]
    assert np.abs(map_x - xs).max() < 1e-3 and np.abs(map_y - ys).max() < 1e-3


def test_shoulders_the_matte_shows_stay_still(astronaut_identity):
    """A matte with a head, a neck and shoulders rising close under the chin: the shoulders'
    tops take no motion, though the geometric fade alone would move them."""
    ident = astronaut_identity
    plain = body.HeadNeck.from_landmarks(ident.landmarks, ident.centre)
    ys, xs = np.mgrid[0:512, 0:512]
    rel = (np.stack([xs, ys], axis=-1) - plain.origin) / plain.iod
    u, below = rel @ plain.across, rel @ plain.down - plain.chin / plain.iod
    person = ((below < 0) & (np.abs(u) < 1.4)) | (np.abs(u) < 0.7) | (below > 0.3)
    head = body.HeadNeck.from_landmarks(ident.landmarks, ident.centre, person.astype(np.uint8) * 255)
    tops = _along(head, [-1.6, 1.6], [0.36, 0.36])  # the shoulders' top edge (profile steps of 0.05 IOD)
    assert (plain.weight(tops) > 0.3).all()
    assert (head.weight(tops) == 0.0).all()
    assert head.weight(_along(head, [0.0], [0.3]))[0] > 0.5  # the neck still follows


def test_reach_covers_the_extreme_poses(head):
    points = _along(head, np.linspace(-3, 3, 13), np.full(13, -2.0))
    far = head.reach(points)
    for rot, shift in body.extreme_poses(head.iod):
        a, b = head.rigid(rot, shift)
        assert np.abs(head.forward(points, a, b) - points).max() <= far + 1e-9
    assert len(body.extreme_poses(head.iod)) == 32


def test_the_motion_fades_out_at_the_frame_edge(astronaut_identity):
    """Hair cut by the picture's edge stays attached to it: nothing outside the frame to pull in."""
    ident = astronaut_identity
    framed = body.HeadNeck.from_landmarks(ident.landmarks, ident.centre, size=512)
    top = np.array([[x, 0.0] for x in range(150, 350, 10)])
    assert (framed.weight(top) == 0.0).all()
    assert (framed.weight(top + [0, body.EDGE_PIN_IOD * framed.iod]) == 1.0).all()
    # the face itself is far from the edge: untouched
    assert (framed.weight(ident.landmarks[: lm.N_MESH, :2]) == 1.0).all()
