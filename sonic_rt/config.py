"""The parameters users know from Sonic, validated once, each set round-tripping to JSON.

``GeometryParams``: ``expand_ratio`` is the margin added on each side of the detected face (as a
fraction of the face size) to make the square working crop; ``min_resolution`` is the short side
of the output. ``MotionParams``: how motion is generated from audio; ``VideoParams``: the output
frame clock (both documented on the class).
"""

from __future__ import annotations

import json
import numbers
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Self


def state_dir() -> Path:
    """Where sonic-rt keeps what outlives a run (the audit log, the API key store):
    ``$SONIC_RT_HOME``, else ``$XDG_STATE_HOME/sonic-rt``, else ``~/.local/state/sonic-rt``
    (not created here)."""
    if home := os.environ.get("SONIC_RT_HOME"):
        return Path(home)
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "sonic-rt"


MIN_RESOLUTION_RANGE = (128, 2048)
EXPAND_RATIO_RANGE = (0.1, 1.0)


class _JsonParams:
    """JSON round trip for the frozen parameter dataclasses below."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Self:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class GeometryParams(_JsonParams):
    expand_ratio: float = 0.5
    min_resolution: int = 512

    def __post_init__(self) -> None:
        check_range("expand_ratio", self.expand_ratio, EXPAND_RATIO_RANGE)
        check_integer("min_resolution", self.min_resolution, MIN_RESOLUTION_RANGE)
        if self.min_resolution % 2:
            raise ValueError(f"min_resolution must be even (video encoders need it), got {self.min_resolution}")


INFERENCE_STEPS_RANGE = (1, 50)
SCALE_RANGE = (0.5, 2.0)
BLOCK_FRAMES_RANGE = (1, 16)
# offline there is no latency to keep low: 8 frames per model call cost a third of 2 (bench_motion)
OFFLINE_BLOCK_FRAMES = 8
SMOOTHING_RANGE = (0.0, 2.0)
SEED_RANGE = (0, 2**63 - 1)  # what both torch's and numpy's generators take
GUIDANCE_RANGE = (0.0, 10.0)
FPS_RANGE = (10, 60)
LIP_SYNC_OFFSET_RANGE_MS = (-500.0, 500.0)
# bench/bench_lipsync.py: the shipped model's mouth comes 34-43 ms after the real speaker's
# (mean best lag over the av_* clips), so by default frames show motion one frame ahead.
LIP_SYNC_OFFSET_MS = -40.0


@dataclass(frozen=True)
class MotionParams(_JsonParams):
    """How motion is generated from audio.

    ``inference_steps`` denoising steps per window (2 by default: on the lip-sync benchmark it
    tracked the real mouth better than 4; up to 50 allowed);
    ``guidance`` classifier-free guidance on audio; ``dynamic_scale`` amplitude of mouth/lip
    motion; ``motion_scale`` amplitude of head and expression motion (brows, smile); ``seed``
    makes the stochastic parts (diffusion noise, blink timing) reproducible; ``block_frames``
    frames generated per model call (latency = block + look-ahead; larger is cheaper offline);
    ``smoothing`` strength of the causal motion smoothing (0 off, 1 default, 2 twice as smooth).
    """

    inference_steps: int = 2
    guidance: float = 2.0
    dynamic_scale: float = 1.0
    motion_scale: float = 1.0
    seed: int = 0
    block_frames: int = 2
    smoothing: float = 1.0

    def __post_init__(self) -> None:
        check_integer("inference_steps", self.inference_steps, INFERENCE_STEPS_RANGE)
        check_range("smoothing", self.smoothing, SMOOTHING_RANGE)
        check_range("dynamic_scale", self.dynamic_scale, SCALE_RANGE)
        check_range("motion_scale", self.motion_scale, SCALE_RANGE)
        check_integer("block_frames", self.block_frames, BLOCK_FRAMES_RANGE)
        check_integer("seed", self.seed, SEED_RANGE)
        check_range("guidance", self.guidance, GUIDANCE_RANGE)


def check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    lo, hi = bounds
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")


def check_integer(name: str, value: int, bounds: tuple[int, int]) -> None:
    """``check_range`` for a count or a seed: a float (``1.5``, even ``2.0``) or a bool is refused too."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    check_range(name, value, bounds)


@dataclass(frozen=True)
class VideoParams(_JsonParams):
    """The output frame clock.

    ``fps`` output frames per second (the motion model runs at 25; other rates are interpolated);
    ``lip_sync_offset_ms`` shifts the mouth against the sound: positive moves later, negative
    earlier (the default corrects the model's measured lag; a negative offset adds as much latency).
    """

    fps: int = 25
    lip_sync_offset_ms: float = LIP_SYNC_OFFSET_MS

    def __post_init__(self) -> None:
        check_integer("fps", self.fps, FPS_RANGE)
        check_range("lip_sync_offset_ms", self.lip_sync_offset_ms, LIP_SYNC_OFFSET_RANGE_MS)
