"""The ``sonic-rt`` command line."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import click

from .config import (
    BLOCK_FRAMES_RANGE,
    EXPAND_RATIO_RANGE,
    FPS_RANGE,
    INFERENCE_STEPS_RANGE,
    LIP_SYNC_OFFSET_MS,
    LIP_SYNC_OFFSET_RANGE_MS,
    MIN_RESOLUTION_RANGE,
    OFFLINE_BLOCK_FRAMES,
    SCALE_RANGE,
    SMOOTHING_RANGE,
    GeometryParams,
    MotionParams,
    VideoParams,
)
from .errors import SonicError

EXIT_BAD_INPUT = 2

NOT_BUILT = (
    "Not built yet: the invisible watermark and the audit log (`watermark`, `audit`), "
    "and serving on Ray (`serve --ray`); see the README."
)

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


@contextlib.contextmanager
def _exit_on_bad_input():
    """Unusable input (a ``SonicError``) prints ``error [CODE]: message`` and exits with status 2."""
    try:
        yield
    except SonicError as err:
        click.echo(f"error [{err.code}]: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)


def _enroll(image: str, params: GeometryParams, analyzer):
    from .identity import enroll

    with _exit_on_bad_input():
        return enroll(_portrait(image), params, analyzer)


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


@main.command()
@click.argument("portrait")
@click.argument("audio", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="MP4 to write")
@click.option("--say", help="speak this text with the embedded text-to-speech instead of an AUDIO file")
@click.option("--voice", default="en-us", show_default=True, help="espeak-ng voice for --say (e.g. en-gb, cmn)")
@click.option(
    "--duration", type=click.FloatRange(min=0, min_open=True), help="seconds of video [default: the audio's length]"
)
@click.option("--pad", is_flag=True, help="allow a --duration longer than the audio: the face idles over silence")
@click.option("--trim", is_flag=True, help="allow a --duration shorter than the audio: the audio is cut")
@with_geometry
@click.option(
    "--inference-steps",
    type=click.IntRange(*INFERENCE_STEPS_RANGE),
    default=MotionParams.inference_steps,
    show_default=True,
    help="denoising steps of the motion diffusion",
)
@click.option(
    "--dynamic-scale",
    type=click.FloatRange(*SCALE_RANGE),
    default=MotionParams.dynamic_scale,
    show_default=True,
    help="amplitude of mouth and lip motion",
)
@click.option(
    "--motion-scale",
    type=click.FloatRange(*SCALE_RANGE),
    default=MotionParams.motion_scale,
    show_default=True,
    help="amplitude of head and expression motion",
)
@click.option(
    "--lip-sync-offset-ms",
    type=click.FloatRange(*LIP_SYNC_OFFSET_RANGE_MS),
    default=LIP_SYNC_OFFSET_MS,
    show_default=True,
    help="shift the mouth against the sound (+ later, - earlier)",
)
@click.option(
    "--smoothing",
    type=click.FloatRange(*SMOOTHING_RANGE),
    default=MotionParams.smoothing,
    show_default=True,
    help="strength of head and expression smoothing (0 off)",
)
@click.option(
    "--seed", type=int, default=MotionParams.seed, show_default=True, help="makes head motion and blinks reproducible"
)
@click.option(
    "--fps", type=click.IntRange(*FPS_RANGE), default=VideoParams.fps, show_default=True, help="output frame rate"
)
@click.option(
    "--block-frames",
    type=click.IntRange(*BLOCK_FRAMES_RANGE),
    default=OFFLINE_BLOCK_FRAMES,
    show_default=True,
    help="frames per motion-model call (the live server uses 2)",
)
@click.option("--allow-silence", is_flag=True, help="accept audio that is silent throughout (the face only idles)")
@click.option(
    "--crf", type=click.IntRange(0, 51), default=20, show_default=True, help="H.264 quality (lower is better)"
)
@click.option("--quiet", is_flag=True, help="no progress bar")
def generate(portrait: str, audio: Path | None, output: Path, say: str | None, voice: str, quiet: bool, crf: int,
             **params) -> None:  # fmt: skip
    """Make a talking video: PORTRAIT speaking AUDIO (or --say TEXT), written to an MP4 (H.264 + AAC).

    PORTRAIT is a JPEG/PNG/WebP file or a built-in sample such as sample:astronaut; AUDIO is any
    file ffmpeg reads (wav, mp3, m4a, ogg, flac, or a video's sound).
    """
    import torch

    from .offline import generate as run

    if (audio is None) == (say is None):
        raise click.UsageError("give either an AUDIO file or --say TEXT")
    torch.set_num_threads(1)  # a 1.2 M-parameter model: more threads only spin-wait
    if params["duration"] is None:
        del params["duration"]
    with _progress(quiet) as progress, _exit_on_bad_input():
        try:
            source = audio if say is None else _speak(say, voice)
            result = run(_portrait(portrait), source, output, progress=progress, crf=crf, **params)
        except ValueError as err:
            raise click.UsageError(str(err)) from err
    stages = ("decode", "features", "motion", "render", "encode")
    split = "  ".join(f"{s} {result.timings_ms.get(s, 0.0) / 1e3:.2f} s" for s in stages)
    enroll_s = result.timings_ms["enroll"] / 1e3
    click.echo(f"stages (s of work; encoding runs alongside): enroll {enroll_s:.2f} s  {split}")
    click.echo(f"wrote {result.output}: {result.frames} frames, {result.seconds:.2f} s at {result.fps} fps, "
               f"in {result.wall_s:.2f} s ({result.realtime_factor:.1f}x real time)")  # fmt: skip


def _speak(text: str, voice: str):
    from .tts import synthesize

    return synthesize(text, voice=voice).audio


class _progress:
    """A progress bar on a terminal (stderr), nothing otherwise; the callable ``generate`` takes."""

    def __init__(self, quiet: bool) -> None:
        self._bar = None
        if not quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self._bar = Progress(
                "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True,
            )  # fmt: skip
            self._task = self._bar.add_task("frames", total=None)

    def __enter__(self):
        if self._bar is None:
            return None
        self._bar.start()
        return self

    def __call__(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
