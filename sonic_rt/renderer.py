"""Motion vector + identity -> RGB frame.

Per frame: deform the warp mesh (expression fields, then head pose), rasterise it into a
backward map over the animated region, pull the portrait's pixels through it with
``cv2.remap``, paint the mouth interior where the lips have parted, and paste the region into
the background plate. Pixels outside the region are the plate's own; inside, the displacement
falls to zero at the region's edge, so the seam is invisible. Last, the frame gets its marks
(``sonic_rt.marks``): the optional visible label and the session's invisible watermark.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from . import blendshapes, mesh, motion
from .identity import Identity
from .marks import Marker, Marks
from .mouth import paint_interior
from .raster import backward_map, identity_grid

STAGES = ("deform", "raster", "remap", "mouth", "marks")


class Renderer:
    """Renders frames of one identity, each with ``marks`` (watermark, label) when given. Not
    thread-safe: use one per session."""

    def __init__(self, identity: Identity, marks: Marks | None = None) -> None:
        self.identity = identity
        self._marker = Marker(marks, identity.out_size) if marks is not None else None
        self._grid = identity_grid(identity.roi)
        self._palette = identity.mouth_palette
        self._rest = identity.vertices.astype(np.float64)
        self._pos = identity.basis_pos.reshape(len(blendshapes.EXPRESSION_CHANNELS), -1).astype(np.float64)
        self._neg = identity.basis_neg.reshape(len(blendshapes.EXPRESSION_CHANNELS), -1).astype(np.float64)
        self._pose_weight = identity.pose_weight.astype(np.float64)[:, None]
        self._centre = identity.centre.astype(np.float64)

    def deform(self, vec: np.ndarray) -> np.ndarray:
        """Deformed warp-mesh vertices ``(V, 3)`` (x, y in output px; z depth) for one motion vector."""
        vec = motion.clip(np.asarray(vec, dtype=np.float32)).astype(np.float64)
        expr = vec[blendshapes.EXPR_INDEX]
        disp = np.maximum(expr, 0) @ self._pos + np.maximum(-expr, 0) @ self._neg
        points = self._rest.copy()
        points[:, :2] += disp.reshape(-1, 2)
        yaw, pitch, roll, tx, ty = vec[blendshapes.POSE_INDEX]
        if yaw or pitch or roll or tx or ty:
            rot = blendshapes.rotation(yaw, pitch, roll)
            posed = (points - self._centre) @ rot.T + self._centre
            posed[:, 0] += tx * self.identity.iod
            posed[:, 1] += ty * self.identity.iod
            points = points + self._pose_weight * (posed - points)
        return points

    def render(self, vec: np.ndarray, timings: dict[str, float] | None = None) -> np.ndarray:
        """One ``(S, S, 3)`` uint8 RGB frame; adds each stage's ms to ``timings`` when given."""
        ident = self.identity
        t0 = time.perf_counter()
        points = self.deform(vec)
        t1 = time.perf_counter()
        map_x, map_y = backward_map(
            points[:, :2], self._rest[:, :2], points[:, 2], ident.triangles, ident.roi, self._grid
        )
        t2 = time.perf_counter()
        frame = ident.plate.copy()
        x0, y0, w, h = ident.roi
        frame[y0 : y0 + h, x0 : x0 + w] = cv2.remap(
            ident.plate, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        t3 = time.perf_counter()
        paint_interior(frame, points, ident.landmarks, ident.plate, self._palette, ident.iod, ident.own_gap)
        t4 = time.perf_counter()
        if self._marker is not None:
            frame = self._marker.apply(frame)
        if timings is not None:
            t5 = time.perf_counter()
            for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                timings[stage] = timings.get(stage, 0.0) + dt * 1e3
        return frame

    def landmarks(self, vec: np.ndarray) -> np.ndarray:
        """Where the face's landmarks (first 468) land in the frame for ``vec``: ``(468, 2)``."""
        return self.deform(vec)[: mesh.N_MESH, :2]
