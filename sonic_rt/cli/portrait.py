"""``enroll`` and ``preview``: a portrait analysed, and shown under a sweep of motions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..config import GeometryParams
from .options import exit_on_bad_input, geometry_params, portrait_source, with_geometry


@click.command()
@click.argument("image")
@with_geometry
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="store the identity cache here")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def enroll(image: str, expand_ratio: float, min_resolution: int, cache_dir: Path | None, as_json: bool) -> None:
    """Analyse a portrait: face box, landmarks, crop and timings (exit 2 on an unusable image).

    IMAGE is a JPEG/PNG/WebP file or a built-in sample such as sample:astronaut.
    """
    params = geometry_params(expand_ratio, min_resolution)  # refused before the models load
    from ..face.analysis import FaceAnalyzer

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
        "layers": identity.layered,  # person over a still background plate; false: warped as one picture
        "notes": list(identity.notes),
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
    click.echo("layers       " + ("person over a still background plate" if identity.layered else "none"))
    for note in identity.notes:
        click.echo(f"note         {note}")
    click.echo(f"crop         x {identity.crop.x0} y {identity.crop.y0} side {identity.crop.side} -> "
               f"{identity.out_size} x {identity.out_size} output")  # fmt: skip
    timings = result["timings_ms"]
    click.echo("timings      " + "  ".join(f"{k} {v:.0f} ms" for k, v in timings.items()))
    if saved:
        click.echo(f"cache        {saved}")


@click.command()
@click.argument("image")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG to write")
@with_geometry
@click.option("--tile", type=click.IntRange(64, 1024), default=256, show_default=True, help="tile size in pixels")
def preview(image: str, output: Path, expand_ratio: float, min_resolution: int, tile: int) -> None:
    """Render a contact sheet of the portrait under a sweep of motions.

    IMAGE is a JPEG/PNG/WebP file or a built-in sample such as sample:astronaut.
    """
    params = geometry_params(expand_ratio, min_resolution)  # refused before the models load
    import cv2

    from ..face.analysis import FaceAnalyzer
    from ..render.preview import SWEEP, contact_sheet
    from ..render.renderer import Renderer

    identity = _enroll(image, params, FaceAnalyzer())
    sheet = contact_sheet(Renderer(identity), tile=tile)
    if not cv2.imwrite(str(output), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise click.ClickException(f"cannot write {output}")
    click.echo(f"wrote {output} ({len(SWEEP)} motions, {sheet.shape[1]} x {sheet.shape[0]} px)")


def _enroll(image: str, params: GeometryParams, analyzer):
    from ..render.identity import enroll

    with exit_on_bad_input():
        return enroll(portrait_source(image), params, analyzer)
