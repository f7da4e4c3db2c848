"""What the commands share: the geometry options, the portrait argument, the exit status of unusable input."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from ..config import EXPAND_RATIO_RANGE, MIN_RESOLUTION_RANGE, GeometryParams
from ..errors import SonicError

EXIT_BAD_INPUT = 2

geometry_options = [
    click.option(
        "--expand-ratio",
        type=click.FloatRange(*EXPAND_RATIO_RANGE),
        default=GeometryParams.expand_ratio,
        show_default=True,
        help="margin around the face for the working crop, as a fraction of the face size",
    ),
    click.option(
        "--min-resolution",
        type=click.IntRange(*MIN_RESOLUTION_RANGE),
        default=GeometryParams.min_resolution,
        show_default=True,
        help="short side of the output frame in pixels (even)",
    ),
]


def with_geometry(func):
    for option in reversed(geometry_options):
        func = option(func)
    return func


def geometry_params(expand_ratio: float, min_resolution: int) -> GeometryParams:
    try:
        return GeometryParams(expand_ratio=expand_ratio, min_resolution=min_resolution)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


def portrait_source(image: str):
    """A path, or ``sample:NAME`` for a built-in sample (an RGB array)."""
    from ..face.samples import is_sample, load_sample

    if not is_sample(image):
        return Path(image)
    try:
        return load_sample(image)
    except KeyError as err:
        raise click.BadParameter(str(err.args[0]), param_hint="IMAGE") from err


@contextlib.contextmanager
def exit_on_bad_input():
    """Unusable input (a ``SonicError``) prints ``error [CODE]: message`` and exits with status 2."""
    try:
        yield
    except SonicError as err:
        click.echo(f"error [{err.code}]: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
