"""Motion vector + identity -> RGB frame.

Per frame: deform the warp mesh (expression fields, then head pose), turn it into a backward map
(where each output pixel comes from), pull the portrait's pixels through it with ``cv2.remap``,
paint the mouth interior where the lips have parted. Last, the frame gets its marks
(``sonic_rt.provenance.marks``): the optional visible label and the session's invisible watermark.

Two ways to make and use the map:

- **Layers** (when enrolment found a person, ``Identity.layered``): the map covers the person
  layer (``sonic_rt.render.layers``). Inside the face mesh it is rasterised from the deformed mesh; around
  it the person moves by the head-and-neck field (``sonic_rt.render.body``): rigidly with the head above
  the chin, fading down the neck into the still shoulders. The warped person and its matte are
  composited over the background plate, which never moves: a pixel the person does not cover is
  the plate's own, whatever the pose.
- **One picture** (no person found, or ``layers=False``): the map is rasterised over the region
  the rest mesh covers and the portrait is warped as a whole; the displacement falls to zero at
  the mesh's outer ring, so there is no seam, but the background inside the ring bends with the
  head.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from ..face import mesh
from ..motion import vector
from ..provenance.marks import Marker, Marks
from . import blendshapes, layers
from .body import GRID_STEP, HeadNeck
from .identity import Identity
from .mouth import paint_interior
from .raster import backward_map, identity_grid, rasterize_into

STAGES = ("deform", "raster", "remap", "mouth", "marks")


class Renderer:
    """Renders frames of one identity, each with ``marks`` (watermark, label) when given.
    ``layers=False`` warps the portrait as one picture even when it has layers (the renderer as it
    was before layers; benchmarks compare the two). Not thread-safe: use one per session."""

    def __init__(self, identity: Identity, marks: Marks | None = None, layers: bool = True) -> None:
        self.identity = identity
        self.layered = layers and identity.layered
        self._marker = Marker(marks, identity.out_size) if marks is not None else None
        self._palette = identity.mouth_palette
        self._rest = identity.vertices.astype(np.float64)
        self._pos = identity.basis_pos.reshape(len(blendshapes.EXPRESSION_CHANNELS), -1).astype(np.float64)
        self._neg = identity.basis_neg.reshape(len(blendshapes.EXPRESSION_CHANNELS), -1).astype(np.float64)
        self._centre = identity.centre.astype(np.float64)
        if self.layered:
            self._init_layers()
        else:
            self._grid = identity_grid(identity.roi)
            self._pose_weight = identity.pose_weight.astype(np.float64)[:, None]

    def _init_layers(self) -> None:
        ident = self.identity
        self._head = HeadNeck.from_landmarks(ident.landmarks, self._centre, ident.matte)
        weight = np.ones(mesh.N_VERTICES)
        weight[mesh.N_MESH :] = self._head.weight(self._rest[mesh.N_MESH :, :2])
        self._pose_weight = weight[:, None]
        # Beyond the face mesh's head ring the head-and-neck field moves the person: the outer
        # band is not drawn (its big triangles would drag the shoulders along with the head), and
        # the head ring takes no expression motion (the field around it has none).
        rings = np.zeros((mesh.N_VERTICES, 2), bool)
        rings[mesh.N_MESH :] = True
        self._pos = np.where(rings.reshape(-1), 0.0, self._pos)
        self._neg = np.where(rings.reshape(-1), 0.0, self._neg)
        tris = ident.triangles
        self._tris = np.ascontiguousarray(tris[~(tris >= mesh.OUTER_RING.start).any(axis=1)])
        self._person = layers.person_layer(ident.plate, ident.matte, ident.background)
        self._background = ident.background
        self._neutral = layers.composite(self._person, self._background)
        self._work = self._work_region()

    def _work_region(self) -> tuple[int, int, int, int]:
        """Where a layered frame can differ from the rest frame: the face mesh's region and every
        moving pixel of the person within the head's reach."""
        ident = self.identity
        size = ident.out_size
        ys, xs = np.nonzero(ident.matte[::4, ::4] > 0)
        points = np.stack([xs, ys], axis=1).astype(np.float64) * 4
        points = points[self._head.weight(points) > 0]
        x0, y0, w, h = ident.roi
        lo, hi = np.array([x0, y0], np.float64), np.array([x0 + w, y0 + h], np.float64)
        if len(points):
            reach = self._head.reach(points[:: max(1, len(points) // 1000)]) + 4 + GRID_STEP
            lo = np.minimum(lo, points.min(axis=0) - reach)
            hi = np.maximum(hi, points.max(axis=0) + reach)
        x0, y0 = np.maximum(np.floor(lo), 0).astype(int)
        x1, y1 = np.minimum(np.ceil(hi), size).astype(int)
        return int(x0), int(y0), int(x1 - x0), int(y1 - y0)

    def _pose(self, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The head's rotation (3, 3) and translation (2,) px for a clipped motion vector."""
        yaw, pitch, roll, tx, ty = vec[blendshapes.POSE_INDEX]
        return blendshapes.rotation(yaw, pitch, roll), np.array([tx, ty]) * self.identity.iod

    def deform(self, vec: np.ndarray) -> np.ndarray:
        """Deformed warp-mesh vertices ``(V, 3)`` (x, y in output px; z depth) for one motion vector."""
        vec = vector.clip(np.asarray(vec, dtype=np.float32)).astype(np.float64)
        expr = vec[blendshapes.EXPR_INDEX]
        disp = np.maximum(expr, 0) @ self._pos + np.maximum(-expr, 0) @ self._neg
        points = self._rest.copy()
        points[:, :2] += disp.reshape(-1, 2)
        if vec[blendshapes.POSE_INDEX].any():
            rot, shift = self._pose(vec)
            posed = (points - self._centre) @ rot.T + self._centre
            posed[:, :2] += shift
            points = points + self._pose_weight * (posed - points)
        return points

    def render(self, vec: np.ndarray, timings: dict[str, float] | None = None) -> np.ndarray:
        """One ``(S, S, 3)`` uint8 RGB frame; adds each stage's ms to ``timings`` when given."""
        ident = self.identity
        t0 = time.perf_counter()
        points = self.deform(vec)
        t1 = time.perf_counter()
        if self.layered:
            x0, y0, w, h = self._work
            a, b = self._head.rigid(*self._pose(vector.clip(np.asarray(vec, np.float32)).astype(np.float64)))
            map_x, map_y = self._head.backward_map(a, b, self._work)
            rasterize_into(map_x, map_y, points[:, :2], self._rest[:, :2], points[:, 2], self._tris, (x0, y0))
            t2 = time.perf_counter()
            person = cv2.remap(self._person, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
            frame = self._neutral.copy()
            frame[y0 : y0 + h, x0 : x0 + w] = layers.composite(person, self._background[y0 : y0 + h, x0 : x0 + w])
        else:
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
