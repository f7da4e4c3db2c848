"""Triangle rasteriser that turns a deformed mesh into a backward warp map.

For every pixel of a region it finds the front-most deformed triangle covering it (z-buffer)
and interpolates, with that triangle's barycentric weights, where the pixel came from in the
portrait. ``cv2.remap`` then pulls the pixels: an exact piecewise-affine inverse warp, with no
holes and with folds (a turned head's far cheek behind its nose) resolved by depth.
Compiled with numba; the first call in a fresh environment compiles (cached on disk after).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, fastmath=True)
def _rasterize(dst, src, depth, tris, x0, y0, map_x, map_y, zbuf):  # pragma: no cover - compiled
    height, width = map_x.shape
    for t in range(tris.shape[0]):
        i0, i1, i2 = tris[t, 0], tris[t, 1], tris[t, 2]
        ax, ay = dst[i0, 0] - x0, dst[i0, 1] - y0
        bx, by = dst[i1, 0] - x0, dst[i1, 1] - y0
        cx, cy = dst[i2, 0] - x0, dst[i2, 1] - y0
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if abs(area) < 1e-9:
            continue
        inv = 1.0 / area
        xmin = max(int(np.floor(min(ax, bx, cx))), 0)
        xmax = min(int(np.ceil(max(ax, bx, cx))), width - 1)
        ymin = max(int(np.floor(min(ay, by, cy))), 0)
        ymax = min(int(np.ceil(max(ay, by, cy))), height - 1)
        for y in range(ymin, ymax + 1):
            for x in range(xmin, xmax + 1):
                w0 = ((bx - x) * (cy - y) - (by - y) * (cx - x)) * inv
                w1 = ((cx - x) * (ay - y) - (cy - y) * (ax - x)) * inv
                w2 = 1.0 - w0 - w1
                if w0 < -1e-6 or w1 < -1e-6 or w2 < -1e-6:
                    continue
                z = w0 * depth[i0] + w1 * depth[i1] + w2 * depth[i2]
                if z >= zbuf[y, x]:
                    continue
                zbuf[y, x] = z
                map_x[y, x] = w0 * src[i0, 0] + w1 * src[i1, 0] + w2 * src[i2, 0]
                map_y[y, x] = w0 * src[i0, 1] + w1 * src[i1, 1] + w2 * src[i2, 1]


def backward_map(
    dst: np.ndarray,
    src: np.ndarray,
    depth: np.ndarray,
    tris: np.ndarray,
    roi: tuple[int, int, int, int],
    identity: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Backward map for the region ``roi = (x0, y0, w, h)``.

    ``dst``/``src``: ``(V, 2)`` deformed and rest vertex positions (output pixels);
    ``depth``: ``(V,)`` deformed depth (smaller is nearer); ``tris``: ``(T, 3)``.
    ``identity`` holds the region's own pixel coordinates (the map where nothing covers).
    Returns ``map_x, map_y`` ``(h, w)`` float32 in absolute output pixels.
    """
    x0, y0, w, h = roi
    map_x = identity[0].copy()
    map_y = identity[1].copy()
    zbuf = np.full((h, w), np.inf, dtype=np.float32)
    _rasterize(
        np.ascontiguousarray(dst, dtype=np.float64),
        np.ascontiguousarray(src, dtype=np.float64),
        np.ascontiguousarray(depth, dtype=np.float64),
        np.ascontiguousarray(tris, dtype=np.int32),
        float(x0),
        float(y0),
        map_x,
        map_y,
        zbuf,
    )
    return map_x, map_y


def rasterize_into(
    map_x: np.ndarray,
    map_y: np.ndarray,
    dst: np.ndarray,
    src: np.ndarray,
    depth: np.ndarray,
    tris: np.ndarray,
    origin: tuple[int, int],
) -> None:
    """Like ``backward_map``, but drawn over the maps ``(h, w)`` float32 given (in place), whose
    pixel ``(0, 0)`` is the output pixel ``origin = (x0, y0)``; pixels no triangle covers keep
    their value."""
    zbuf = np.full(map_x.shape, np.inf, dtype=np.float32)
    _rasterize(
        np.ascontiguousarray(dst, dtype=np.float64),
        np.ascontiguousarray(src, dtype=np.float64),
        np.ascontiguousarray(depth, dtype=np.float64),
        np.ascontiguousarray(tris, dtype=np.int32),
        float(origin[0]),
        float(origin[1]),
        map_x,
        map_y,
        zbuf,
    )


def identity_grid(roi: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    x0, y0, w, h = roi
    ys, xs = np.mgrid[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
    return xs, ys
