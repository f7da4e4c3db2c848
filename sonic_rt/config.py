"""Geometry parameters users know from Sonic, validated once.

``expand_ratio`` is the margin added on each side of the detected face (as a fraction of the
face size) to make the square working crop; ``min_resolution`` is the short side of the output.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

MIN_RESOLUTION_RANGE = (128, 2048)
EXPAND_RATIO_RANGE = (0.1, 1.0)


@dataclass(frozen=True)
class GeometryParams:
    expand_ratio: float = 0.5
    min_resolution: int = 512

    def __post_init__(self) -> None:
        lo, hi = EXPAND_RATIO_RANGE
        if not lo <= self.expand_ratio <= hi:
            raise ValueError(f"expand_ratio must be in [{lo}, {hi}], got {self.expand_ratio}")
        lo, hi = MIN_RESOLUTION_RANGE
        if not lo <= self.min_resolution <= hi:
            raise ValueError(f"min_resolution must be in [{lo}, {hi}], got {self.min_resolution}")
        if self.min_resolution % 2:
            raise ValueError(f"min_resolution must be even (video encoders need it), got {self.min_resolution}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GeometryParams:
        return cls(**json.loads(text))
