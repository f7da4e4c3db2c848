"""The motion vector: one named, documented row of numbers per video frame.

Every stage after audio speaks this vocabulary: the motion model predicts it, the renderer
draws it, the server can stream it to clients that drive their own 3-D avatar. Where an ARKit
blendshape means the same thing its name is given (``arkit``); a symmetric channel maps onto both
the ``Left`` and ``Right`` ARKit shapes. Left/right are the *subject's*.

All zeros is the portrait as photographed. Face-shape channels are unit-less amplitudes;
head rotations are in degrees; head translations are in inter-ocular distances (IOD).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Channel:
    name: str
    arkit: tuple[str, ...]
    low: float
    high: float
    doc: str


CHANNELS: tuple[Channel, ...] = (
    Channel(
        "jaw_open", ("jawOpen",), 0.0, 1.0, "jaw drops with the lower lip; 1 = wide open (lower lip 0.45 IOD down)"
    ),
    Channel("mouth_close", ("mouthClose",), 0.0, 1.0, "lips close over the portrait's own lip gap; 1 = sealed"),
    Channel("lip_width", ("mouthStretchLeft", "mouthStretchRight"), -1.0, 1.0, "+ corners pulled apart, - narrowed"),
    Channel("lip_round", ("mouthPucker", "mouthFunnel"), 0.0, 1.0, "lips rounded and pushed forward (oo, w)"),
    Channel("upper_lip", ("mouthUpperUpLeft", "mouthUpperUpRight"), -1.0, 1.0, "+ upper lip raised, - lowered"),
    Channel(
        "lower_lip", ("mouthLowerDownLeft", "mouthLowerDownRight"), -1.0, 1.0, "+ lower lip lowered without the jaw"
    ),
    Channel("smile", ("mouthSmileLeft", "mouthSmileRight"), -1.0, 1.0, "+ corners up and out (smile), - down (frown)"),
    Channel("blink_left", ("eyeBlinkLeft",), 0.0, 1.0, "subject's left upper lid down; 1 = closed"),
    Channel("blink_right", ("eyeBlinkRight",), 0.0, 1.0, "subject's right upper lid down; 1 = closed"),
    Channel(
        "brows", ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"), -1.0, 1.0, "+ raised, - lowered (browDown)"
    ),
    Channel("head_yaw", (), -20.0, 20.0, "degrees; + turns to the subject's left (face moves to image right)"),
    Channel("head_pitch", (), -15.0, 15.0, "degrees; + nods down (chin towards chest)"),
    Channel("head_roll", (), -15.0, 15.0, "degrees; + tilts towards the subject's left shoulder (clockwise on screen)"),
    Channel("head_x", (), -0.3, 0.3, "IOD; + moves to image right"),
    Channel("head_y", (), -0.3, 0.3, "IOD; + moves down"),
)

NAMES: tuple[str, ...] = tuple(c.name for c in CHANNELS)
DIM = len(CHANNELS)
INDEX: dict[str, int] = {name: i for i, name in enumerate(NAMES)}
LOW = np.array([c.low for c in CHANNELS], dtype=np.float32)
HIGH = np.array([c.high for c in CHANNELS], dtype=np.float32)
HEAD_CHANNELS = ("head_yaw", "head_pitch", "head_roll", "head_x", "head_y")
MOUTH_CHANNELS = ("jaw_open", "lip_width", "lip_round", "upper_lip", "lower_lip")  # shaped by speech


def neutral(frames: int | None = None) -> np.ndarray:
    """All-zero motion: ``(DIM,)`` or ``(frames, DIM)`` float32."""
    shape = (DIM,) if frames is None else (frames, DIM)
    return np.zeros(shape, dtype=np.float32)


def make(**values: float) -> np.ndarray:
    """A single motion vector from named values, e.g. ``make(jaw_open=0.5, blink_left=1)``."""
    vec = neutral()
    for name, value in values.items():
        if name not in INDEX:
            raise KeyError(f"unknown motion channel {name!r}; channels: {', '.join(NAMES)}")
        vec[INDEX[name]] = value
    return vec


def clip(motion: np.ndarray) -> np.ndarray:
    """Clamp every channel into its documented range."""
    return np.clip(motion, LOW, HIGH).astype(np.float32, copy=False)


def to_dict(vec: np.ndarray) -> dict[str, float]:
    return {name: float(v) for name, v in zip(NAMES, vec, strict=True)}


def to_arkit(vec: np.ndarray) -> dict[str, float]:
    """ARKit blendshape weights in [0, 1] for the channels that have one.

    Signed channels feed their positive side to the listed shapes; the negative side of
    ``brows`` feeds ``browDownLeft/Right`` and of ``smile`` feeds ``mouthFrownLeft/Right``.
    """
    named = to_dict(vec)
    out: dict[str, float] = {}
    for ch in CHANNELS:
        for shape in ch.arkit:
            out[shape] = float(np.clip(named[ch.name], 0.0, 1.0))
    out["mouthStretchLeft"] = out["mouthStretchRight"] = float(np.clip(named["lip_width"], 0, 1))
    out["browDownLeft"] = out["browDownRight"] = float(np.clip(-named["brows"], 0, 1))
    out["mouthFrownLeft"] = out["mouthFrownRight"] = float(np.clip(-named["smile"], 0, 1))
    return out
