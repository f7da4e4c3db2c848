"""The optional visible label: "AI-generated" in the frame's lower left corner.

White text on a half-transparent dark box, sized to the frame (legible from 128 px up). The box
is drawn once; a frame costs one blend over the box's few thousand pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

TEXT = "AI-generated"
OPACITY = 0.55  # of the dark box; the text is opaque
FONT = cv2.FONT_HERSHEY_SIMPLEX


class Label:
    """Draws the label on ``(size, size, 3)`` frames."""

    def __init__(self, size: int, text: str = TEXT) -> None:
        scale = size / 900
        thickness = max(1, round(size / 400))
        (width, height), baseline = cv2.getTextSize(text, FONT, scale, thickness)
        pad = max(2, round(size / 100))
        box_w, box_h = width + 2 * pad, height + baseline + 2 * pad
        self._x, self._y = pad, size - pad - box_h
        text_mask = np.zeros((box_h, box_w), np.uint8)
        cv2.putText(text_mask, text, (pad, pad + height), FONT, scale, 255, thickness, cv2.LINE_AA)
        text_alpha = text_mask.astype(np.float32)[..., None] / 255
        # per pixel: out = frame * keep + paint
        self._keep = (1 - OPACITY) * (1 - text_alpha)
        self._paint = 255 * text_alpha
        self._shape = (box_h, box_w)

    @property
    def box(self) -> tuple[slice, slice]:
        """Where the label is drawn: ``frame[box]`` (rows, columns)."""
        h, w = self._shape
        return slice(self._y, self._y + h), slice(self._x, self._x + w)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """Draws on ``rgb`` in place and returns it."""
        region = rgb[self.box]
        region[:] = np.clip(region * self._keep + self._paint, 0, 255).astype(np.uint8)
        return rgb
