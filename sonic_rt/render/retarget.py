"""Fit generated motion to a portrait whose own mouth may already be open.

The motion model speaks of the mouth in absolute terms: ``jaw_open`` is the lip gap measured
from closed lips (``JAW_GAP_IOD`` per unit), so silence is ``jaw_open = 0`` whatever the photo
shows. The renderer's channels are relative to the portrait as photographed. For a portrait
with a lip gap of its own, a gap smaller than that is drawn by ``mouth_close`` (sealing the
photo's own opening part or all of the way) and a larger one by ``jaw_open`` on top of it.
"""

from __future__ import annotations

import numpy as np

from ..motion import vector
from .blendshapes import JAW_GAP_IOD

JAW = vector.INDEX["jaw_open"]
CLOSE = vector.INDEX["mouth_close"]


def to_portrait(absolute: np.ndarray, own_gap_iod: float) -> np.ndarray:
    """Portrait-relative motion ``(..., DIM)`` for absolute-mouth motion of the same shape."""
    out = np.array(absolute, dtype=np.float32, copy=True)
    gap = np.maximum(out[..., JAW], 0.0) * JAW_GAP_IOD
    own = max(float(own_gap_iod), 0.0)
    wider = gap >= own
    out[..., JAW] = np.where(wider, (gap - own) / JAW_GAP_IOD, 0.0)
    out[..., CLOSE] = np.where(wider, 0.0, 1.0 - gap / max(own, 1e-6))
    return vector.clip(out)
