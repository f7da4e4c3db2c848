"""Working crop and output geometry.

The crop is a square centred on the face box, ``1 + 2 * expand_ratio`` face sizes wide, moved
inside the image where it would cross a border and shrunk only when the image is smaller than
the crop. It is scaled so that its side is ``min_resolution``: that square is the output frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..config import GeometryParams
from .analysis import FaceAnalysis


@dataclass(frozen=True)
class CropTransform:
    """Integer crop ``(x0, y0, side)`` in the input image and its scale to the output."""

    x0: int
    y0: int
    side: int
    out_size: int

    @property
    def scale(self) -> float:
        return self.out_size / self.side

    def to_output(self, points: np.ndarray) -> np.ndarray:
        """Map ``(N, 2|3)`` image-pixel points to output pixels (z is scaled like x)."""
        out = np.array(points, dtype=np.float64, copy=True)
        out[:, 0] = (out[:, 0] - self.x0 + 0.5) * self.scale - 0.5
        out[:, 1] = (out[:, 1] - self.y0 + 0.5) * self.scale - 0.5
        if out.shape[1] > 2:
            out[:, 2] *= self.scale
        return out

    def crop_image(self, image: np.ndarray) -> np.ndarray:
        """The crop of ``image`` resized to ``out_size`` square: the background plate."""
        crop = image[self.y0 : self.y0 + self.side, self.x0 : self.x0 + self.side]
        if self.side == self.out_size:
            return np.ascontiguousarray(crop)
        interp = cv2.INTER_AREA if self.side > self.out_size else cv2.INTER_CUBIC
        return cv2.resize(crop, (self.out_size, self.out_size), interpolation=interp)


def compute_crop(face: FaceAnalysis, params: GeometryParams) -> CropTransform:
    height, width = face.image_size
    x0, y0, x1, y1 = face.box
    size = face.face_size
    side = size * (1.0 + 2.0 * params.expand_ratio)
    side = int(round(min(side, height, width)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(round(cx - side / 2))
    top = int(round(cy - side / 2))
    left = min(max(left, 0), width - side)
    top = min(max(top, 0), height - side)
    return CropTransform(x0=left, y0=top, side=side, out_size=params.min_resolution)
