"""The ``sonic-rt`` command line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from .config import EXPAND_RATIO_RANGE, MIN_RESOLUTION_RANGE, GeometryParams
from .errors import SonicError

EXIT_BAD_INPUT = 2

NOT_BUILT = "Not built yet: generate (photo + audio -> MP4) and serve (live server); see the README."

geometry_options = [
    click.option(
        "--expand-ratio",
        type=click.FloatRange(*EXPAND_RATIO_RANGE),
        default=0.5,
        show_default=True,
        help="margin around the face for the working crop, as a fraction of the face size",
    ),
    click.option(
        "--min-resolution",
        type=click.IntRange(*MIN_RESOLUTION_RANGE),
        default=512,
        show_default=True,
        help="short side of the output frame in pixels (even)",
    ),
]


def with_geometry(func):
    for option in reversed(geometry_options):
        func = option(func)
    return func


def _params(expand_ratio: float, min_resolution: int) -> GeometryParams:
    try:
        return GeometryParams(expand_ratio=expand_ratio, min_resolution=min_resolution)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


def _portrait(image: str):
    """A path, or ``sample:NAME`` for a built-in sample (an RGB array)."""
    from .samples import is_sample, load_sample

    if not is_sample(image):
        return Path(image)
    try:
        return load_sample(image)
    except KeyError as err:
        raise click.BadParameter(str(err.args[0]), param_hint="IMAGE") from err


def _enroll(image: str, params: GeometryParams, analyzer):
    """Enrol ``image``; an unusable portrait prints its error code and exits with status 2."""
    from .identity import enroll

    try:
        return enroll(_portrait(image), params, analyzer)
    except SonicError as err:
        click.echo(f"error [{err.code}]: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)


@click.group(epilog=NOT_BUILT)
@click.version_option(package_name="sonic-rt")
def main() -> None:
    """sonic-rt: one portrait + audio -> a lip-synced talking face, in real time on a CPU."""


@main.command()
@click.argument("image")
@with_geometry
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="store the identity cache here")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def enroll(image: str, expand_ratio: float, min_resolution: int, cache_dir: Path | None, as_json: bool) -> None:
    """Analyse a portrait: face box, landmarks, crop and timings (exit 2 on an unusable image).

    IMAGE is a JPEG/PNG/WebP file or a built-in sample such as sample:astronaut.
    """
    from .face import FaceAnalyzer

    params = _params(expand_ratio, min_resolution)
    t0 = time.perf_counter()
    analyzer = FaceAnalyzer()
    load_ms = (time.perf_counter() - t0) * 1e3
    identity = _enroll(image, params, analyzer)
    saved = None
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        saved = cache_dir / f"{identity.key}.npz"
        identity.save(saved)
    x0, y0, x1, y1 = identity.face_box
    result = {
        "image": str(image),
        "sha256": identity.image_sha256,
        "face_box": [round(v, 1) for v in identity.face_box],
        "faces_found": identity.n_faces,
        "landmarks": len(identity.landmarks),
        "crop": {"x0": identity.crop.x0, "y0": identity.crop.y0, "side": identity.crop.side},
        "output_size": identity.out_size,
        "timings_ms": {"load_models": round(load_ms, 1), **{k: round(v, 1) for k, v in identity.timings_ms.items()}},
        "cache": str(saved) if saved else None,
    }
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"face box     x {x0:.0f}..{x1:.0f}  y {y0:.0f}..{y1:.0f}  ({x1 - x0:.0f} x {y1 - y0:.0f} px)")
    if identity.n_faces > 1:
        click.echo(f"faces found  {identity.n_faces} (using the largest)")
    click.echo(f"landmarks    {len(identity.landmarks)}")
    click.echo(f"crop         x {identity.crop.x0} y {identity.crop.y0} side {identity.crop.side} -> "
               f"{identity.out_size} x {identity.out_size} output")  # fmt: skip
    timings = result["timings_ms"]
    click.echo("timings      " + "  ".join(f"{k} {v:.0f} ms" for k, v in timings.items()))
    if saved:
        click.echo(f"cache        {saved}")


@main.command()
@click.argument("image")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG to write")
@with_geometry
@click.option("--tile", type=click.IntRange(64, 1024), default=256, show_default=True, help="tile size in pixels")
def preview(image: str, output: Path, expand_ratio: float, min_resolution: int, tile: int) -> None:
    """Render a contact sheet of the portrait under a sweep of motions.

    IMAGE is a JPEG/PNG/WebP file or a built-in sample such as sample:astronaut.
    """
    import cv2

    from .face import FaceAnalyzer
    from .preview import SWEEP, contact_sheet
    from .renderer import Renderer

    identity = _enroll(image, _params(expand_ratio, min_resolution), FaceAnalyzer())
    sheet = contact_sheet(Renderer(identity), tile=tile)
    if not cv2.imwrite(str(output), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise click.ClickException(f"cannot write {output}")
    click.echo(f"wrote {output} ({len(SWEEP)} motions, {sheet.shape[1]} x {sheet.shape[0]} px)")
