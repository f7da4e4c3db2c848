"""The parameter sets' own checks: ranges, and types where JSON could hand over the wrong one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sonic_rt.config import SEED_RANGE, GeometryParams, MotionParams, VideoParams
from sonic_rt.offline import JobParams


@pytest.mark.parametrize(
    "bad",
    [
        {"inference_steps": 2.5}, {"inference_steps": 2.0}, {"inference_steps": True}, {"block_frames": 2.5},
        {"seed": -1}, {"seed": SEED_RANGE[1] + 1}, {"seed": 1.5}, {"seed": "3"},
        {"dynamic_scale": math.nan}, {"motion_scale": math.inf}, {"smoothing": "1"},
    ],
)  # fmt: skip
def test_counts_and_seeds_are_integers_in_range_and_scales_numbers(bad):
    """A seed numpy or torch refuses, or a fractional count, used to pass and fail deep in a render."""
    with pytest.raises((ValueError, TypeError)):
        MotionParams(**bad)


def test_integers_of_any_kind_pass():
    params = MotionParams(seed=SEED_RANGE[1], inference_steps=np.int64(4))
    assert params.inference_steps == 4 and params.seed == 2**63 - 1
    assert GeometryParams(min_resolution=np.int32(256)).min_resolution == 256
    with pytest.raises(ValueError, match="integer"):
        GeometryParams(min_resolution=512.0)
    with pytest.raises(ValueError, match="integer"):
        VideoParams(fps=25.0)


@pytest.mark.parametrize("flag", ["pad", "trim", "allow_silence"])
def test_job_flags_are_booleans(flag):
    """From JSON, "no" would have been true."""
    with pytest.raises(ValueError, match=flag):
        JobParams(**{flag: "no"})
    assert getattr(JobParams(**{flag: True}), flag) is True
