import numpy as np

from sonic_rt.face import mesh
from sonic_rt.render.raster import backward_map, identity_grid


def test_surface_is_mediapipes_852_triangles():
    tris = mesh.surface_triangles()
    assert tris.shape == (852, 3)
    assert len({tuple(t) for t in tris}) == 852


def test_every_edge_borders_at_most_two_triangles():
    from collections import Counter

    edges = Counter()
    for t in mesh.triangles():
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2])):
            edges[(min(a, b), max(a, b))] += 1
    assert max(edges.values()) == 2
    assert mesh.triangles().max() == mesh.N_VERTICES - 1


def test_rest_mesh_covers_the_whole_region(astronaut_identity):
    ident = astronaut_identity
    grid = identity_grid(ident.roi)
    sentinel = (np.full_like(grid[0], -1e6), np.full_like(grid[1], -1e6))
    rest = ident.vertices.astype(np.float64)
    map_x, map_y = backward_map(rest[:, :2], rest[:, :2], rest[:, 2], ident.triangles, ident.roi, sentinel)
    covered = map_x > -1e5
    assert np.array_equal(covered, ident.region)
    # no holes: every pixel strictly inside the outer ring is covered
    import cv2

    inside = np.zeros_like(covered, np.uint8)
    outer = ident.vertices[mesh.OUTER_RING, :2] - ident.roi[:2]
    cv2.fillPoly(inside, [np.round(outer).astype(np.int32)], 1)
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    assert covered[inside].all()
    # the rest mesh maps every pixel onto itself
    assert np.abs(map_x[covered] - grid[0][covered]).max() < 1e-3
    assert np.abs(map_y[covered] - grid[1][covered]).max() < 1e-3


def test_rings_enclose_the_face_and_stay_in_frame(astronaut_identity):
    v = astronaut_identity.vertices
    size = astronaut_identity.out_size
    outer = v[mesh.OUTER_RING, :2]
    assert outer.min() >= 0 and outer.max() <= size - 1
    oval_span = np.ptp(v[:468, 0])
    assert np.ptp(outer[:, 0]) > np.ptp(v[mesh.HEAD_RING, 0]) > oval_span
