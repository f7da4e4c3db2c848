import numpy as np

from sonic_rt.render.raster import backward_map, identity_grid


def test_single_triangle_is_an_affine_inverse():
    src = np.array([[10.0, 10.0], [50.0, 10.0], [10.0, 50.0]])
    dst = src * 1.5 + [5.0, -3.0]  # destination = affine image of the source
    roi = (0, 0, 100, 100)
    map_x, map_y = backward_map(dst, src, np.zeros(3), np.array([[0, 1, 2]], np.int32), roi, identity_grid(roi))
    y, x = 30, 30  # inside the destination triangle
    assert map_x[y, x] == np.float32((x - 5.0) / 1.5)
    assert abs(map_y[y, x] - (y + 3.0) / 1.5) < 1e-4
    assert map_x[90, 90] == 90 and map_y[90, 90] == 90  # uncovered pixels keep their own position


def test_zbuffer_keeps_the_nearest_triangle():
    dst = np.array([[0.0, 0.0], [40.0, 0.0], [0.0, 40.0], [0.0, 0.0], [40.0, 0.0], [0.0, 40.0]])
    src = np.array([[0.0, 0.0], [40.0, 0.0], [0.0, 40.0], [100.0, 100.0], [140.0, 100.0], [100.0, 140.0]])
    depth = np.array([5.0, 5.0, 5.0, 1.0, 1.0, 1.0])  # the second triangle is nearer
    roi = (0, 0, 50, 50)
    tris = np.array([[0, 1, 2], [3, 4, 5]], np.int32)
    map_x, _ = backward_map(dst, src, depth, tris, roi, identity_grid(roi))
    assert map_x[10, 10] == 110
