"""How the person layer moves outside the face mesh: the head as one piece, fading down the neck.

Above the chin everything of the person (hair, ears, earrings, a hat) follows the head as one
rigid piece: the head pose's rotation about the head centre, taken at the centre's depth, plus
its translation. At that depth a turn or a nod foreshortens the silhouette a little instead of
sliding it (a head's outline stays where it is while the face turns inside it); a roll turns it.
Below the chin the motion fades along the body, down the neck into the shoulders, which stay where
they are; sideways of the neck it fades sooner (that is where the shoulders rise), and where the
person's matte shows a shoulder it is gone at the shoulder's top. The weight is measured in the
face's own frame, so a tilted portrait fades along its own neck; it also fades out at the frame's
edge, where there is nothing to pull in (hair cut by the top of the picture stays attached to it).

The field is ``G(p) = p + w(p) (H(p) - p)`` with ``H`` the head's rigid motion and ``w`` the
weight. The renderer needs its inverse (where each output pixel comes from): solved for the weight
on a coarse grid (exact where ``w`` is 1 or 0; where the head folds over the shoulders the head is
in front) and interpolated up.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass

import cv2
import numba
import numpy as np

from ..face import landmarks as lm
from ..motion import vector
from . import blendshapes

NECK_START_IOD = 0.05  # the fade starts this far below the chin (the jaw's underside moves with the head)
NECK_LENGTH_IOD = 1.0  # ... and is complete this much further down: the root of the neck
NECK_HALF_IOD = 0.8  # half the neck's width; beyond it, below the chin, are the shoulders
SHOULDER_SLOPE = 0.6  # each IOD sideways beyond the neck counts as this much further down the body...
SHOULDER_RAMP_IOD = 0.6  # ... fully from this far below the chin (above it hair beside the face is head)
SIDEWAYS_MAX_IOD = 1.5  # ... up to this far beyond the neck (the fade stays gentle at the frame's sides)
SHOULDER_CLEAR_IOD = 0.9  # where the matte shows a shoulder, the motion is gone this far above its top
SHOULDER_SCAN_IOD = (-1.5, 1.5)  # the shoulder is looked for in this span around the chin's level
PROFILE_STEP_IOD = 0.05  # resolution of the shoulder-top profile...
PROFILE_SMOOTH_IOD = 0.25  # ... smoothed sideways over this much (no tear where the neck meets a shoulder)
EDGE_PIN_IOD = 0.4  # the motion fades out within this much of the frame's edge (nothing to pull in there)
GRID_STEP = 8  # px between the coarse-grid samples of the inverse field
SEARCH_STEPS = 5  # weights tried (1 down to 0) to bracket a pixel's own in the inverse ...
REFINE_STEPS = 5  # ... then steps of regula falsi inside the bracket


# The field, compiled (numba; cached on disk like the rasteriser's): one implementation serves the
# vectorised ``HeadNeck.weight`` and the per-pixel inverse. ``g`` packs the portrait's frame:
# origin x, y, across x, y, down x, y, iod, chin / iod, profile's first u, frame side (0: none).


@numba.njit(cache=True, nogil=True, fastmath=True)
def _smooth(t):  # pragma: no cover - compiled
    t = min(max(t, 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _weight_at(x, y, g, tops):  # pragma: no cover - compiled
    rx, ry = (x - g[0]) / g[6], (y - g[1]) / g[6]
    u = rx * g[2] + ry * g[3]
    below = rx * g[4] + ry * g[5] - g[7]
    sideways = min(max(abs(u) - NECK_HALF_IOD, 0.0), SIDEWAYS_MAX_IOD) * _smooth(below / SHOULDER_RAMP_IOD)
    w = 1.0 - _smooth((below - NECK_START_IOD + SHOULDER_SLOPE * sideways) / NECK_LENGTH_IOD)
    if len(tops):  # the profile, interpolated linearly (the weight stays continuous)
        at = min(max((u - g[8]) / PROFILE_STEP_IOD, 0.0), len(tops) - 1.0)
        k = min(int(at), len(tops) - 2)
        top = tops[k] + (at - k) * (tops[k + 1] - tops[k])
        w = min(w, _smooth((top - below) / SHOULDER_CLEAR_IOD))
    if g[9] > 0:
        edge = min(min(x, y), g[9] - 1.0 - max(x, y))
        w *= _smooth(edge / (EDGE_PIN_IOD * g[6]))
    return w


@numba.njit(cache=True, nogil=True, fastmath=True)
def _weights(xy, g, tops, out):  # pragma: no cover - compiled
    for i in range(xy.shape[0]):
        out[i] = _weight_at(xy[i, 0], xy[i, 1], g, tops)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _source(qx, qy, w, m):  # pragma: no cover - compiled
    """p(w): ((1 - w) I + w A) p = q - w b, with m = (a00, a01, a10, a11, b0, b1)."""
    m00, m01, m10, m11 = 1.0 - w + w * m[0], w * m[1], w * m[2], 1.0 - w + w * m[3]
    rx, ry = qx - w * m[4], qy - w * m[5]
    det = m00 * m11 - m01 * m10
    return (m11 * rx - m01 * ry) / det, (m00 * ry - m10 * rx) / det


@numba.njit(cache=True, nogil=True, fastmath=True)
def _inverse(q, m, g, tops, out):  # pragma: no cover - compiled
    for i in range(q.shape[0]):
        qx, qy = q[i, 0], q[i, 1]
        px, py = _source(qx, qy, 1.0, m)
        w_head = _weight_at(px, py, g, tops)
        if w_head >= 1.0:  # moves rigidly with the head
            out[i, 0], out[i, 1] = px, py
            continue
        if w_head <= 0.0 and _weight_at(qx, qy, g, tops) <= 0.0:  # body at both ends: it stays
            out[i, 0], out[i, 1] = qx, qy
            continue
        # the first weight from the head's side that is not too much (w = 0 always is) ...
        lo, f_lo = 0.0, 0.0
        hi, f_hi = 1.0, w_head - 1.0
        for k in range(1, SEARCH_STEPS + 1):
            w = 1.0 - k / SEARCH_STEPS
            px, py = _source(qx, qy, w, m)
            f = _weight_at(px, py, g, tops) - w
            if f >= 0.0:
                lo, f_lo = w, f
                break
            hi, f_hi = w, f
        # ... then regula falsi on f(w) = weight(p(w)) - w inside the bracket (Illinois: an end
        # kept twice has its f halved, so that neither end sticks)
        side = 0
        for _ in range(REFINE_STEPS):
            mid = lo + (hi - lo) * min(max(f_lo / max(f_lo - f_hi, 1e-12), 0.0), 1.0)
            px, py = _source(qx, qy, mid, m)
            f = _weight_at(px, py, g, tops) - mid
            if f >= 0.0:
                lo, f_lo = mid, f
                if side == 1:
                    f_hi *= 0.5
                side = 1
            else:
                hi, f_hi = mid, f
                if side == -1:
                    f_lo *= 0.5
                side = -1
        t = min(max(f_lo / max(f_lo - f_hi, 1e-12), 0.0), 1.0)
        out[i, 0], out[i, 1] = _source(qx, qy, lo + t * (hi - lo), m)


@dataclass(frozen=True)
class HeadNeck:
    """The head-and-neck field of one portrait, in output pixels.

    ``centre`` (3,) is the head's rotation centre (``blendshapes.head_centre``); ``origin`` (2,),
    ``across`` and ``down`` (2,) unit vectors and ``iod`` the face frame; ``chin`` how far the chin
    lies below ``origin`` along ``down``, px.
    """

    centre: np.ndarray
    origin: np.ndarray
    across: np.ndarray
    down: np.ndarray
    iod: float
    chin: float
    shoulders: np.ndarray | None = None  # (K,) tops of the shoulders below the chin, IOD
    shoulders_u0: float = 0.0  # the profile's first sideways position, IOD (step PROFILE_STEP_IOD)
    size: int | None = None  # the frame's side, px: near its edge the motion fades out

    @classmethod
    def from_landmarks(
        cls, points: np.ndarray, centre: np.ndarray, matte: np.ndarray | None = None, size: int | None = None
    ) -> HeadNeck:
        """From output-pixel face landmarks ``(>=478, 2|3)`` and the head centre ``(3,)``; with
        the person's ``matte`` (S, S) the shoulders it shows are kept still; in a frame of side
        ``size`` (the matte's, if given) the motion fades out at the frame's edge."""
        frame = blendshapes.FaceFrame.from_landmarks(points)
        oval = points[list(lm.FACE_OVAL), :2].astype(np.float64)
        chin = float(((oval - frame.origin) @ frame.ey).max())
        has_matte = matte is not None and matte.size > 0
        size = matte.shape[0] if has_matte else size
        head = cls(np.asarray(centre, np.float64), frame.origin, frame.ex, frame.ey, frame.iod, chin, size=size)
        if not has_matte:
            return head
        u0, tops = head._shoulder_profile(matte)
        return dataclasses.replace(head, shoulders=tops, shoulders_u0=u0)

    def _shoulder_profile(self, matte: np.ndarray) -> tuple[float, np.ndarray]:
        """For every sideways position, how far below the chin (IOD; negative: above) the body's
        top is: the top of the run of person that reaches the bottom of ``SHOULDER_SCAN_IOD``, when
        that run does not go up to its top (a neck, or hair hanging from the head, does)."""
        side = matte.shape[0]
        span = side / self.iod
        u = np.arange(-span, span, PROFILE_STEP_IOD)
        v = np.arange(SHOULDER_SCAN_IOD[0], SHOULDER_SCAN_IOD[1] + 1e-9, PROFILE_STEP_IOD)
        uu, vv = np.meshgrid(u, v + self.chin / self.iod, indexing="ij")
        xy = self.origin + (uu[..., None] * self.across + vv[..., None] * self.down) * self.iod
        x, y = np.round(xy[..., 0]).astype(int), np.round(xy[..., 1]).astype(int)
        inside = (x >= 0) & (x < side) & (y >= 0) & (y < side)
        person = np.zeros(uu.shape, bool)
        person[inside] = matte[y[inside], x[inside]] > 127
        # the scan's lowest in-frame sample per column: the body's own level there
        last = np.where(inside.any(axis=1), inside.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1), 0)
        rows = np.arange(len(u))
        body = person[rows, last] & inside[rows, last]
        gap = ~person & inside & (np.arange(len(v))[None, :] <= last[:, None])
        top_gap = np.where(gap.any(axis=1), len(v) - 1 - np.argmax(gap[:, ::-1], axis=1), -1)
        none = NECK_START_IOD + NECK_LENGTH_IOD + SHOULDER_CLEAR_IOD  # no shoulder: no limit beyond the neck's
        tops = np.where(body & (top_gap >= 0), v[np.clip(top_gap, 0, None)] + PROFILE_STEP_IOD, none)
        tops = np.minimum(tops, none)
        sigma = PROFILE_SMOOTH_IOD / PROFILE_STEP_IOD
        taps = np.exp(-0.5 * (np.arange(-3 * int(sigma), 3 * int(sigma) + 1) / sigma) ** 2)
        padded = np.pad(tops, len(taps) // 2, mode="edge")
        return float(u[0]), np.convolve(padded, taps / taps.sum(), mode="valid")

    @functools.cached_property
    def _packed(self) -> tuple[np.ndarray, np.ndarray]:
        g = np.array([*self.origin, *self.across, *self.down, self.iod, self.chin / self.iod,
                      self.shoulders_u0, self.size or 0], np.float64)  # fmt: skip
        tops = np.zeros(0) if self.shoulders is None else np.ascontiguousarray(self.shoulders, np.float64)
        return g, tops

    def weight(self, xy: np.ndarray) -> np.ndarray:
        """How much of the head's motion the points ``(..., 2)`` take: 1 above the chin, 0 on the
        shoulders (and at the frame's edge, when the frame's size is known)."""
        xy = np.asarray(xy, np.float64)
        flat = np.ascontiguousarray(xy.reshape(-1, 2))
        out = np.empty(len(flat))
        _weights(flat, *self._packed, out)
        return out.reshape(xy.shape[:-1])

    def rigid(self, rot: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The head's rigid motion in the image plane, ``H(p) = A @ p + b``, for the 3-D rotation
        ``rot`` (3, 3) about the centre and the translation ``shift`` (2,) px."""
        a = rot[:2, :2].astype(np.float64)
        c = self.centre[:2]
        return a, c - a @ c + np.asarray(shift, np.float64)

    def reach(self, xy: np.ndarray) -> float:
        """The farthest (px) any of the points ``(N, 2)`` moves under the extreme head poses
        (every corner of the allowed yaw, pitch, roll and translation)."""
        xy = np.asarray(xy, np.float64)
        if not len(xy):
            return 0.0
        far = 0.0
        for rot, shift in extreme_poses(self.iod):
            a, b = self.rigid(rot, shift)
            far = max(far, float(np.abs(self.forward(xy, a, b) - xy).max()))
        return far

    def forward(self, xy: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Where the points ``(N, 2)`` move: ``G(p)``."""
        xy = np.asarray(xy, np.float64)
        return xy + self.weight(xy)[:, None] * (xy @ a.T + b - xy)

    def inverse(self, xy: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Where the points ``(N, 2)`` came from: ``p`` with ``G(p) = xy``.

        For a weight ``w`` held fixed, ``G`` is affine and ``p(w)`` follows in closed form from
        ``((1 - w) I + w A) p = q - w b``; the weight that is consistent, ``weight(p(w)) = w``,
        is searched in 0..1 from the head's side (where the head folds over the shoulders, the
        head is in front), bracketed on ``SEARCH_STEPS`` values and refined by regula falsi."""
        q = np.ascontiguousarray(xy, np.float64)
        out = np.empty_like(q)
        m = np.array([a[0, 0], a[0, 1], a[1, 0], a[1, 1], b[0], b[1]], np.float64)
        _inverse(q, m, *self._packed, out)
        return out

    def backward_map(
        self, a: np.ndarray, b: np.ndarray, roi: tuple[int, int, int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``map_x, map_y`` ``(h, w)`` float32 over ``roi = (x0, y0, w, h)``: the source pixel of
        every output pixel, solved on a ``GRID_STEP`` grid and interpolated bilinearly."""
        x0, y0, w, h = roi
        s = GRID_STEP
        nx, ny = -(-w // s) + 2, -(-h // s) + 2  # one sample beyond the region on every side
        # cv2.resize samples source cell j at output pixel s * j + (s - 1) / 2: place the grid so
        gx = x0 + (np.arange(nx) - 1) * s + (s - 1) / 2
        gy = y0 + (np.arange(ny) - 1) * s + (s - 1) / 2
        q = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
        p = self.inverse(q, a, b).reshape(ny, nx, 2).astype(np.float32)
        full = cv2.resize(p, (nx * s, ny * s), interpolation=cv2.INTER_LINEAR)[s : s + h, s : s + w]
        return np.ascontiguousarray(full[..., 0]), np.ascontiguousarray(full[..., 1])


def extreme_poses(iod: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(rotation (3, 3), shift (2,) px)`` at every corner of the head channels' ranges."""
    ranges = [(vector.LOW[vector.INDEX[c]], vector.HIGH[vector.INDEX[c]]) for c in vector.HEAD_CHANNELS]
    poses = []
    for yaw, pitch, roll, x, y in itertools.product(*ranges):
        poses.append((blendshapes.rotation(yaw, pitch, roll), np.array([x, y], np.float64) * iod))
    return poses
