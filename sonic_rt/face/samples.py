"""Built-in sample portraits, so a fresh install can show something without user files.

``sample:astronaut`` is NASA's public-domain portrait of Eileen Collins, shipped inside
scikit-image. Sample names are accepted wherever a portrait path is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the arrays are made by scikit-image; ``is_sample`` stays light for the command line
    import numpy as np

PREFIX = "sample:"


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


SAMPLES = {"astronaut": _astronaut}
CREDITS = {"astronaut": "Eileen Collins, NASA portrait (public domain, shipped with scikit-image)"}


def is_sample(source: str | Path) -> bool:
    return str(source).startswith(PREFIX)


def load_sample(source: str | Path) -> np.ndarray:
    """The RGB uint8 image of ``sample:NAME``; ``KeyError`` names the samples there are."""
    name = str(source)[len(PREFIX) :]
    if name not in SAMPLES:
        raise KeyError(f"unknown sample {name!r}; samples: {', '.join(PREFIX + n for n in SAMPLES)}")
    return SAMPLES[name]()
