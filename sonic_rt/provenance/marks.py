"""What every generated frame carries besides the face: the session's invisible watermark and,
when asked for, the visible "AI-generated" label."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .label import Label
from .payload import new_payload
from .watermark import Watermarker


@dataclass(frozen=True)
class Marks:
    """``watermark``: the 32-bit payload (by default a fresh random one; the server and the command
    line draw it from the audit log, which ties it to the session); ``label``: draw the label."""

    watermark: int = field(default_factory=new_payload)
    label: bool = False


class Marker:
    """Applies ``Marks`` to ``(size, size, 3)`` frames: the label first, then the watermark over it."""

    def __init__(self, marks: Marks, size: int) -> None:
        self.marks = marks
        self._label = Label(size) if marks.label else None
        self._watermark = Watermarker(marks.watermark)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """The marked frame (``rgb`` itself may be drawn on)."""
        if self._label is not None:
            self._label.apply(rgb)
        return self._watermark.embed(rgb)
