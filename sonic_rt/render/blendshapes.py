"""Per-portrait deformation model: motion vector -> deformed warp-mesh vertices.

Each face-shape channel is a displacement field over the mesh vertices, built once per portrait
from its own landmarks in a face-aligned frame (x from the subject's right eye to the left, y
down the face, unit = inter-ocular distance), so the same channel value means the same motion
on every face. Key points (lips, lids, brows) get explicit displacements and their neighbours a
smooth fall-off; the jaw moves as one piece below the mouth. Head pose then rotates the 3-D
landmarks about the head centre (orthographic), fully for the face and fading out across the
band between head ring and outer ring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..face import landmarks as lm
from ..face import mesh
from ..motion.vector import CHANNELS, HEAD_CHANNELS, INDEX

EXPRESSION_CHANNELS = tuple(c.name for c in CHANNELS if c.name not in HEAD_CHANNELS)
NECK_POSE_WEIGHT = 0.45  # the head ring under the chin follows the head this much
JAW_GAP_IOD = 0.45  # jaw_open 1 lowers the lower lip (and opens the lips) this many IOD


@dataclass(frozen=True)
class FaceFrame:
    origin: np.ndarray  # (2,) midpoint of the iris centres, px
    ex: np.ndarray  # (2,) unit vector, subject's right eye -> left eye
    ey: np.ndarray  # (2,) unit vector down the face
    iod: float  # inter-ocular distance, px

    @classmethod
    def from_landmarks(cls, points: np.ndarray) -> FaceFrame:
        right = points[lm.RIGHT_IRIS_CENTER, :2].astype(np.float64)
        left = points[lm.LEFT_IRIS_CENTER, :2].astype(np.float64)
        ex = left - right
        iod = float(np.hypot(*ex))
        ex = ex / iod
        return cls(origin=(left + right) / 2, ex=ex, ey=np.array([-ex[1], ex[0]]), iod=iod)

    def to_face(self, xy: np.ndarray) -> np.ndarray:
        rel = (xy[:, :2] - self.origin) / self.iod
        return np.stack([rel @ self.ex, rel @ self.ey], axis=1)

    def to_pixels(self, duv: np.ndarray) -> np.ndarray:
        """Face-frame displacements (..., 2) in IOD -> pixel displacements."""
        return (duv[..., :1] * self.ex + duv[..., 1:2] * self.ey) * self.iod


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


class _Builder:
    """Builds displacement fields in face units over all warp vertices."""

    def __init__(self, uv: np.ndarray) -> None:
        self.uv = uv
        self.n = len(uv)
        self.mesh_only = np.zeros(self.n, dtype=bool)
        self.mesh_only[: lm.N_MESH] = True
        corners = uv[list(lm.MOUTH_CORNERS)]
        self.mouth_centre = corners.mean(axis=0)
        self.mouth_half = float(abs(corners[1, 0] - corners[0, 0]) / 2)

    def spread(self, keys: dict[int, np.ndarray], radius: float, pinned: tuple[int, ...] = ()) -> np.ndarray:
        """Key displacements kept exactly; other face vertices get a Gaussian-weighted blend."""
        idx = np.array(list(keys), dtype=np.int64)
        disp = np.array([keys[i] for i in idx], dtype=np.float64)
        dist = np.linalg.norm(self.uv[:, None, :] - self.uv[None, idx, :], axis=2)
        weight = np.exp(-((dist / radius) ** 2))
        blend = (weight @ disp) / np.maximum(weight.sum(axis=1, keepdims=True), 1e-9)
        out = blend * weight.max(axis=1, keepdims=True)
        out[~self.mesh_only] = 0.0
        out[list(pinned)] = 0.0
        out[idx] = disp
        return out

    def lip_t(self, i: int) -> float:
        """Position of vertex ``i`` along the mouth, -1 (subject's right corner) .. 1 (left)."""
        return float(np.clip((self.uv[i, 0] - self.mouth_centre[0]) / max(self.mouth_half, 1e-6), -1.0, 1.0))


def _jaw_open(b: _Builder) -> np.ndarray:
    u, v = b.uv[:, 0], b.uv[:, 1]
    mc = b.mouth_centre
    below = _smoothstep(mc[1] - 0.05, mc[1] + 0.12, v)
    lateral = 1.0 - 0.6 * _smoothstep(0.55, 1.3, np.abs(u - mc[0]))
    weight = below * lateral
    weight[list(lm.LIPS_UPPER)] = 0.0
    weight[list(lm.LIPS_LOWER)] = 1.0
    weight[list(lm.MOUTH_CORNERS + lm.INNER_CORNERS)] = 0.45
    head = np.arange(mesh.HEAD_RING.start, mesh.HEAD_RING.stop)
    weight[head] *= 0.6
    weight[mesh.OUTER_RING] = 0.0
    out = np.zeros((b.n, 2))
    out[:, 1] = JAW_GAP_IOD * weight
    near_mouth = np.exp(-(((b.uv - mc) / [0.6, 0.35]) ** 2).sum(axis=1))
    out[:, 0] = -0.08 * np.clip((u - mc[0]) / max(b.mouth_half, 1e-6), -1, 1) * weight * near_mouth
    return out


def _mouth_close(b: _Builder) -> np.ndarray:
    keys: dict[int, np.ndarray] = {}
    for up, lo in zip(lm.LIPS_INNER_UPPER[1:-1], lm.LIPS_INNER_LOWER[1:-1], strict=True):
        gap = b.uv[lo] - b.uv[up]
        keys[up] = 0.5 * gap
        keys[lo] = -0.5 * gap
    for up, lo, iu, il in zip(
        lm.LIPS_OUTER_UPPER[1:-1],
        lm.LIPS_OUTER_LOWER[1:-1],
        lm.LIPS_INNER_UPPER[1:-1],
        lm.LIPS_INNER_LOWER[1:-1],
        strict=True,
    ):
        keys[up] = 0.6 * keys[iu]
        keys[lo] = 0.6 * keys[il]
    return b.spread(keys, radius=0.12)


def _lip_width(b: _Builder, amount: float) -> np.ndarray:
    keys = {}
    for i in set(lm.LIPS_OUTER_UPPER + lm.LIPS_OUTER_LOWER + lm.LIPS_INNER_UPPER + lm.LIPS_INNER_LOWER):
        t = b.lip_t(i)
        keys[i] = np.array([amount * t, -0.15 * abs(amount) * (b.uv[i, 1] - b.mouth_centre[1])])
    return b.spread(keys, radius=0.3)


def _lip_round(b: _Builder) -> np.ndarray:
    keys = {}
    for i in set(lm.LIPS_OUTER_UPPER + lm.LIPS_OUTER_LOWER + lm.LIPS_INNER_UPPER + lm.LIPS_INNER_LOWER):
        t = b.lip_t(i)
        keys[i] = np.array([-0.2 * t, 0.0])
    centre = lambda i: 1.0 - abs(b.lip_t(i))  # noqa: E731
    for i in lm.LIPS_OUTER_UPPER[1:-1]:
        keys[i][1] = -0.05 * centre(i)
    for i in lm.LIPS_OUTER_LOWER[1:-1]:
        keys[i][1] = 0.05 * centre(i)
    for i in lm.LIPS_INNER_UPPER[1:-1]:
        keys[i][1] = -0.02 * centre(i)
    for i in lm.LIPS_INNER_LOWER[1:-1]:
        keys[i][1] = 0.06 * centre(i)
    return b.spread(keys, radius=0.25)


def _lip_raise(b: _Builder, lips: tuple[int, ...], pinned: tuple[int, ...], dv: float) -> np.ndarray:
    keys = {i: np.array([0.0, dv * (1.0 - 0.7 * b.lip_t(i) ** 2)]) for i in lips}
    for i in lm.MOUTH_CORNERS + lm.INNER_CORNERS:
        keys[i] = np.array([0.0, 0.2 * dv])
    return b.spread(keys, radius=0.15, pinned=pinned)


def _smile(b: _Builder, du: float, dv: float) -> np.ndarray:
    keys = {}
    for i in set(lm.LIPS_OUTER_UPPER + lm.LIPS_OUTER_LOWER + lm.LIPS_INNER_UPPER + lm.LIPS_INNER_LOWER):
        t = b.lip_t(i)
        keys[i] = np.array([du * t * abs(t), dv * abs(t) ** 1.5])
    for i in lm.RIGHT_EYE_LOWER[1:-1] + lm.LEFT_EYE_LOWER[1:-1]:
        keys[i] = np.array([0.0, 0.15 * dv])
    return b.spread(keys, radius=0.3)


def _blink(b: _Builder, upper: tuple[int, ...], lower: tuple[int, ...], crease: tuple[int, ...]) -> np.ndarray:
    lower_uv = b.uv[list(lower)]
    order = np.argsort(lower_uv[:, 0])
    keys = {}
    for i in upper[1:-1]:
        target_v = np.interp(b.uv[i, 0], lower_uv[order, 0], lower_uv[order, 1])
        keys[i] = np.array([0.0, 0.96 * (target_v - b.uv[i, 1])])
    upper_u = b.uv[list(upper[1:-1]), 0]
    upper_dv = np.array([keys[i][1] for i in upper[1:-1]])
    for i in crease:
        keys[i] = np.array([0.0, 0.6 * np.interp(b.uv[i, 0], *_sorted(upper_u, upper_dv))])
    for i in lower[1:-1]:
        keys[i] = np.array([0.0, -0.04 * np.interp(b.uv[i, 0], *_sorted(upper_u, upper_dv))])
    keys[upper[0]] = np.zeros(2)
    keys[upper[-1]] = np.zeros(2)
    return b.spread(keys, radius=0.16, pinned=lower[1:-1])


def _sorted(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(x)
    return x[order], y[order]


def _brows(b: _Builder, dv: float, squeeze: float) -> np.ndarray:
    keys = {}
    brow_centre_u = 0.0
    for i in lm.RIGHT_BROW + lm.LEFT_BROW:
        inner = 1.0 - min(abs(b.uv[i, 0] - brow_centre_u) / 1.0, 1.0)
        keys[i] = np.array([-np.sign(b.uv[i, 0]) * squeeze * inner, dv])
    for i in lm.RIGHT_LID_CREASE + lm.LEFT_LID_CREASE:
        keys[i] = np.array([0.0, 0.3 * dv])
    return b.spread(keys, radius=0.35, pinned=lm.RIGHT_EYE_LOWER + lm.LEFT_EYE_LOWER)


def build_expression_basis(vertices: np.ndarray, frame: FaceFrame) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative displacement fields ``(C, V, 2)`` px for ``EXPRESSION_CHANNELS``.

    A channel value ``m`` displaces the vertices by ``max(m, 0) * pos + max(-m, 0) * neg``.
    """
    b = _Builder(frame.to_face(vertices))
    zero = np.zeros((b.n, 2))
    fields = {
        "jaw_open": (_jaw_open(b), zero),
        "mouth_close": (_mouth_close(b), zero),
        "lip_width": (_lip_width(b, 0.12), _lip_width(b, -0.12)),
        "lip_round": (_lip_round(b), zero),
        "upper_lip": (
            _lip_raise(b, lm.LIPS_UPPER, lm.LIPS_LOWER, -0.08),
            _lip_raise(b, lm.LIPS_UPPER, lm.LIPS_LOWER, 0.05),
        ),
        "lower_lip": (
            _lip_raise(b, lm.LIPS_LOWER, lm.LIPS_UPPER, 0.09),
            _lip_raise(b, lm.LIPS_LOWER, lm.LIPS_UPPER, -0.04),
        ),
        "smile": (_smile(b, 0.10, -0.09), _smile(b, -0.02, 0.06)),
        "blink_left": (_blink(b, lm.LEFT_EYE_UPPER, lm.LEFT_EYE_LOWER, lm.LEFT_LID_CREASE), zero),
        "blink_right": (_blink(b, lm.RIGHT_EYE_UPPER, lm.RIGHT_EYE_LOWER, lm.RIGHT_LID_CREASE), zero),
        "brows": (_brows(b, -0.12, 0.0), _brows(b, 0.07, 0.04)),
    }
    pos = np.stack([frame.to_pixels(fields[name][0]) for name in EXPRESSION_CHANNELS])
    neg = np.stack([frame.to_pixels(fields[name][1]) for name in EXPRESSION_CHANNELS])
    return pos.astype(np.float32), neg.astype(np.float32)


def pose_weights(vertices: np.ndarray) -> np.ndarray:
    """How much each vertex follows head pose: face 1, head ring 1 fading to the neck, outer 0."""
    weight = np.ones(len(vertices), dtype=np.float32)
    head = vertices[mesh.HEAD_RING, :2]
    oval = vertices[list(lm.FACE_OVAL), :2]
    chin_y, top_y = oval[:, 1].max(), oval[:, 1].min()
    low = _smoothstep(top_y + 0.55 * (chin_y - top_y), chin_y, head[:, 1])
    weight[mesh.HEAD_RING] = 1.0 - (1.0 - NECK_POSE_WEIGHT) * low
    weight[mesh.OUTER_RING] = 0.0
    return weight


def head_centre(vertices: np.ndarray) -> np.ndarray:
    """Rotation centre: the oval's centre, at the depth of the face's sides (near the ears)."""
    oval = vertices[list(lm.FACE_OVAL)]
    centre = (oval.min(axis=0) + oval.max(axis=0)) / 2
    centre[2] = vertices[[234, 454], 2].mean()
    return centre


def rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Rotation in image axes (x right, y down, z away): yaw, then pitch, then roll."""
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


EXPR_INDEX = np.array([INDEX[name] for name in EXPRESSION_CHANNELS])
POSE_INDEX = np.array([INDEX[name] for name in HEAD_CHANNELS])
