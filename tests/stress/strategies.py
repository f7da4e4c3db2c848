"""Hypothesis strategies for the stress tests' bad input: JSON of every shape, and values beside
what a parameter takes (out of range, NaN, infinities, 1e308, huge integers, fractions where a
count is due, wrong types), each one that every path refuses, whatever it coerces."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from sonic_rt import config

# Sonic's parameters: (lowest, highest, type), from the ranges the library checks
PARAMS = {
    "expand_ratio": (*config.EXPAND_RATIO_RANGE, float),
    "min_resolution": (*config.MIN_RESOLUTION_RANGE, int),
    "inference_steps": (*config.INFERENCE_STEPS_RANGE, int),
    "guidance": (*config.GUIDANCE_RANGE, float),
    "dynamic_scale": (*config.SCALE_RANGE, float),
    "motion_scale": (*config.SCALE_RANGE, float),
    "seed": (*config.SEED_RANGE, int),
    "block_frames": (*config.BLOCK_FRAMES_RANGE, int),
    "smoothing": (*config.SMOOTHING_RANGE, float),
    "fps": (*config.FPS_RANGE, int),
    "lip_sync_offset_ms": (*config.LIP_SYNC_OFFSET_RANGE_MS, float),
}
EXTREMES = [math.nan, math.inf, -math.inf, 1e308, -1e308, 2**64, -(2**64), 10**30]

# JSON: scalars with NaN and the infinities (Python writes them as the literals NaN and Infinity),
# nested in lists and objects
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
NOT_NUMERIC = st.text(max_size=8).filter(lambda s: not _number(s))  # "5" would be read as 5
WRONG_TYPES = NOT_NUMERIC | st.lists(SCALARS, max_size=2) | st.dictionaries(st.text(max_size=4), SCALARS, max_size=2)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def fraction(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Non-whole numbers in [lo, hi] (a count of 2.5 is refused; 2.0 may be read as 2)."""
    return st.floats(lo, hi).filter(lambda x: x != int(x))


def valid(name: str) -> st.SearchStrategy:
    lo, hi, kind = PARAMS[name]
    if name == "min_resolution":
        return st.integers(lo // 2, hi // 2).map(lambda n: 2 * n)  # even
    return st.integers(lo, hi) if kind is int else st.floats(lo, hi)


def beside(name: str) -> st.SearchStrategy:
    """Values that parameter ``name`` refuses, on every path (JSON to pydantic, JSON to the library)."""
    lo, hi, kind = PARAMS[name]
    below, above = (lo - 1, hi + 1) if kind is int else (lo - abs(lo) * 0.01 - 0.01, hi + abs(hi) * 0.01 + 0.01)
    out = st.sampled_from([below, above, *EXTREMES]) | WRONG_TYPES
    if kind is int:
        out |= fraction(lo, min(hi, 1e6))
    if name == "min_resolution":
        out |= st.integers(lo // 2, hi // 2 - 1).map(lambda n: 2 * n + 1)  # odd
    return out


def one_bad_param(names: list[str] | None = None) -> st.SearchStrategy[dict]:
    """A parameter object whose one field is refused (the others, if any, in range)."""
    names = names or list(PARAMS)

    @st.composite
    def build(draw) -> dict:
        bad = draw(st.sampled_from(names))
        good = draw(st.lists(st.sampled_from([n for n in names if n != bad]), max_size=2, unique=True))
        return {**{n: draw(valid(n)) for n in good}, bad: draw(beside(bad))}

    return build()
