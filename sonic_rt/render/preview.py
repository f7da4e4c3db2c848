"""Contact sheet: a portrait under a sweep of motions, each tile labelled."""

from __future__ import annotations

import cv2
import numpy as np

from ..motion import vector
from .renderer import Renderer

SWEEP: tuple[tuple[str, dict[str, float]], ...] = (
    ("neutral", {}),
    ("jaw 0.25", {"jaw_open": 0.25}),
    ("jaw 0.5", {"jaw_open": 0.5}),
    ("jaw 1.0", {"jaw_open": 1.0}),
    ("smile", {"smile": 1.0}),
    ("smile + jaw 0.3", {"smile": 0.8, "jaw_open": 0.3}),
    ("frown", {"smile": -1.0}),
    ("round (oo)", {"lip_round": 1.0, "jaw_open": 0.15}),
    ("wide (ee)", {"lip_width": 1.0, "jaw_open": 0.15}),
    ("lips closed", {"mouth_close": 1.0}),
    ("blink", {"blink_left": 1.0, "blink_right": 1.0}),
    ("wink (left)", {"blink_left": 1.0}),
    ("brows up", {"brows": 1.0}),
    ("brows down", {"brows": -1.0}),
    ("yaw -12", {"head_yaw": -12.0}),
    ("yaw +12", {"head_yaw": 12.0}),
    ("pitch -10", {"head_pitch": -10.0}),
    ("pitch +10", {"head_pitch": 10.0}),
    ("roll -10", {"head_roll": -10.0}),
    ("roll +10", {"head_roll": 10.0}),
)


def contact_sheet(renderer: Renderer, tile: int = 256, columns: int = 5) -> np.ndarray:
    """An RGB uint8 image of ``SWEEP`` rendered by ``renderer``, ``columns`` tiles per row."""
    tiles = []
    for label, values in SWEEP:
        frame = renderer.render(vector.make(**values))
        small = cv2.resize(frame, (tile, tile), interpolation=cv2.INTER_AREA)
        _label(small, label)
        tiles.append(small)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)


def _label(img: np.ndarray, text: str) -> None:
    size = img.shape[0]
    band = max(14, size // 11)
    img[size - band :] = (img[size - band :] * 0.35).astype(img.dtype)
    font_scale = band / 34
    org = (band // 3, size - band // 4)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
