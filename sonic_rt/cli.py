"""The ``sonic-rt`` command line."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
import uuid
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
from .errors import AuditError, ConsentRequired, SonicError

EXIT_BAD_INPUT = 2
EXIT_TAMPERED = 1  # ``audit verify`` found problems
EXIT_NO_WATERMARK = 3  # ``watermark detect`` found none

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
    from .face.samples import is_sample, load_sample

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
    from .render.identity import enroll

    with _exit_on_bad_input():
        return enroll(_portrait(image), params, analyzer)


@click.group()
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
    params = _params(expand_ratio, min_resolution)  # refused before the models load
    from .face.analysis import FaceAnalyzer

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


@main.command()
@click.argument("image")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG to write")
@with_geometry
@click.option("--tile", type=click.IntRange(64, 1024), default=256, show_default=True, help="tile size in pixels")
def preview(image: str, output: Path, expand_ratio: float, min_resolution: int, tile: int) -> None:
    """Render a contact sheet of the portrait under a sweep of motions.

    IMAGE is a JPEG/PNG/WebP file or a built-in sample such as sample:astronaut.
    """
    params = _params(expand_ratio, min_resolution)  # refused before the models load
    import cv2

    from .face.analysis import FaceAnalyzer
    from .render.preview import SWEEP, contact_sheet
    from .render.renderer import Renderer

    identity = _enroll(image, params, FaceAnalyzer())
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
@click.option("--phonemes", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the AUDIO's phoneme or viseme timings from the TTS that spoke it (JSON: IPA, ARPAbet, espeak, "
                   "Polly speech marks, Azure viseme events; see the README): they drive the mouth where they "
                   "cover the audio")  # fmt: skip
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
@click.option("--consent", is_flag=True,
              help="required for your own portrait: you may use this face and the person shown agreed to it "
                   "being animated (built-in samples need none)")  # fmt: skip
@click.option("--audit-db", type=click.Path(dir_okay=False, path_type=Path),
              help="the audit log this run is recorded in [default: $SONIC_RT_HOME/audit.db, else "
                   "~/.local/state/sonic-rt/audit.db]")  # fmt: skip
@click.option("--label", is_flag=True, help='draw a visible "AI-generated" label in the lower left corner')
def generate(portrait: str, audio: Path | None, output: Path, say: str | None, voice: str, phonemes: Path | None,
             quiet: bool, crf: int, consent: bool, audit_db: Path | None, label: bool, **params) -> None:  # fmt: skip
    """Make a talking video: PORTRAIT speaking AUDIO (or --say TEXT), written to an MP4 (H.264 + AAC).

    PORTRAIT is a JPEG/PNG/WebP file (with --consent) or a built-in sample such as
    sample:astronaut; AUDIO is any file ffmpeg reads (wav, mp3, m4a, ogg, flac, or a video's
    sound). Every frame carries an invisible watermark naming this run, and the run is recorded
    in the audit log: who, which portrait (by hash), the consent, the parameters, the watermark
    payload, what was made and how it ended (`sonic-rt watermark detect VIDEO` finds it again).
    """
    from .provenance.audit import AuditLog, default_path

    if (audio is None) == (say is None):
        raise click.UsageError("give either an AUDIO file or --say TEXT")
    if phonemes is not None and say is not None:
        raise click.UsageError("--phonemes goes with an AUDIO file (--say knows its own phonemes)")
    with _exit_on_bad_input():
        attestation = _consent(portrait, consent)
        marks = None if phonemes is None else _timings(phonemes)
        log = AuditLog(audit_db or default_path())
    import torch  # only now: every refusal above comes without loading the models

    from .offline import Timed
    from .offline import generate as run

    torch.set_num_threads(1)  # a 1.2 M-parameter model: more threads only spin-wait
    recorded = {**params, "crf": crf, "label": label}
    if params["duration"] is None:
        del params["duration"]
    with log, _progress(quiet) as progress, _exit_on_bad_input():
        image = _portrait(portrait)
        start = dict(transport="cli", requester=_os_user(), client="local", portrait=portrait,
                     portrait_sha256=_sha256(image), consent=attestation, params=recorded, record=False)  # fmt: skip
        try:
            with log.session(uuid.uuid4().hex, **start) as audited:  # its watermark, in the record
                source = audio if say is None else _speak(say, voice)
                if marks is not None:
                    source = Timed(audio, marks)
                result = run(image, source, output, progress=progress, crf=crf, watermark=audited.watermark,
                             label=label, **params)  # fmt: skip
                audited.done(result.frames, result.seconds)
        except ValueError as err:
            raise click.UsageError(str(err)) from err
    stages = ("decode", "features", "motion", "render", "encode")
    split = "  ".join(f"{s} {result.timings_ms.get(s, 0.0) / 1e3:.2f} s" for s in stages)
    enroll_s = result.timings_ms["enroll"] / 1e3
    click.echo(f"stages (s of work; encoding runs alongside): enroll {enroll_s:.2f} s  {split}")
    click.echo(f"wrote {result.output}: {result.frames} frames, {result.seconds:.2f} s at {result.fps} fps, "
               f"in {result.wall_s:.2f} s ({result.realtime_factor:.1f}x real time)")  # fmt: skip
    click.echo(f"audit: session {audited.id[:8]}, watermark {audited.watermark:08x}, recorded in {log.path}")


def _timings(path: Path) -> list:
    """The marks of a --phonemes file, read before any model loads (a bad file costs nothing)."""
    from .audio import timings  # here, not at the top: --help and the refusals before it answer without numpy

    return timings.load(path)


def _consent(portrait: str, given: bool) -> str:
    """The consent recorded for PORTRAIT: the attestation of --consent, or the samples' own."""
    from .face.samples import is_sample
    from .provenance.audit import CONSENT_ATTESTATION, SAMPLE_CONSENT

    if is_sample(portrait):
        return SAMPLE_CONSENT
    if not given:
        raise ConsentRequired(
            "a portrait is only animated with consent: pass --consent to confirm that you may use this face "
            "and that the person shown agreed to it being animated"
        )
    return CONSENT_ATTESTATION


def _sha256(image) -> str | None:
    """The portrait file's SHA-256 (a sample's: of its pixels, as the server has it); None if unreadable."""
    from .render.identity import sha256_of

    try:
        return sha256_of(image)
    except OSError:
        return None  # the run fails with unreadable_image, and its record says so


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _speak(text: str, voice: str):
    """The speech of ``--say``: its audio, and its phonemes for the phonetic track."""
    from .audio.tts import synthesize

    return synthesize(text, voice=voice)


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


@main.group()
def audit() -> None:
    """The tamper-evident audit log: every session and portrait, who asked, with what consent."""


db_option = click.option(
    "--db", type=click.Path(dir_okay=False, path_type=Path),
    help="the audit log [default: $SONIC_RT_HOME/audit.db, else ~/.local/state/sonic-rt/audit.db]",
)  # fmt: skip


def _open_log(db: Path | None):
    from .provenance.audit import AuditLog, default_path

    path = db or default_path()
    if not path.is_file():
        raise click.ClickException(f"no audit log at {path}")
    try:
        return AuditLog(path)
    except AuditError as err:
        raise click.ClickException(f"[{err.code}] {err}") from err


@audit.command()
@db_option
def verify(db: Path | None) -> None:
    """Check every record's MAC, the chain and the head: exit 0 if untouched, else 1 with each problem."""
    with _open_log(db) as log:
        result = log.verify()
    if not result.ok:
        click.echo(f"FAILED: {len(result.problems)} problem(s) in {log.path}", err=True)
        for problem in result.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(EXIT_TAMPERED)
    head = f"head #{result.head_seq} {result.head_mac[:16]}" if result.head_seq else "empty"
    click.echo(f"OK: {result.records} records, {head}")


@audit.command()
@db_option
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="the newest N sessions")
@click.option("--json", "as_json", is_flag=True, help="print the sessions as JSON")
def show(db: Path | None, limit: int, as_json: bool) -> None:
    """List the newest sessions: when, how, who, from where, which portrait, watermark, what was made, how it ended."""
    with _open_log(db) as log:
        sessions = log.sessions(limit=limit)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(s) for s in sessions], indent=2))
        return
    rows = [SESSION_COLUMNS, *(_session_row(s) for s in sessions)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(SESSION_COLUMNS))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# what `audit show` and `watermark detect` print of a session
SESSION_COLUMNS = ("session", "started (UTC)", "transport", "requester", "client", "portrait", "watermark", "frames",
                   "seconds", "end")  # fmt: skip


def _session_row(s) -> tuple[str, ...]:
    """A session as ``SESSION_COLUMNS``."""

    def maybe(value, fmt: str = "{}") -> str:
        return "-" if value is None else fmt.format(value)

    return (
        s.id[:8], s.started[:19].replace("T", " "), maybe(s.transport), maybe(s.requester), maybe(s.client),
        maybe(s.portrait_sha256 and s.portrait_sha256[:12]), maybe(s.watermark, "{:08x}"), maybe(s.frames),
        maybe(s.seconds, "{:.2f}"), s.end_reason or ("open" if s.ended is None else "-"),
    )  # fmt: skip


@main.group()
def watermark() -> None:
    """The invisible watermark every generated frame carries: read it back from a video."""


@watermark.command()
@click.argument("video", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="read only the first S seconds")
@db_option
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def detect(video: Path, seconds: float | None, db: Path | None, as_json: bool) -> None:
    """Read the watermark of VIDEO and find its session in the audit log.

    Exit 0 when a watermark is found (with or without its record in this log), 3 when none is.
    """
    from .provenance.audit import default_path
    from .provenance.watermark import detect_video

    with _exit_on_bad_input():
        found = detect_video(video, seconds)
    record = None
    path = db or default_path()
    if found.payload is not None and path.is_file():
        with _open_log(path) as log:
            record = log.find_watermark(found.payload)
    if as_json:
        click.echo(json.dumps({
            "video": str(video), "frames": found.frames, "strength": round(found.strength, 2),
            "payload": None if found.payload is None else f"{found.payload:08x}", "audit_log": str(path),
            "session": None if record is None else dataclasses.asdict(record),
        }, indent=2))  # fmt: skip
    elif found.payload is None:
        click.echo(f"no sonic-rt watermark in {video} ({found.frames} frames read, strength {found.strength:.1f})")
    else:
        click.echo(f"watermark {found.payload:08x} in {video} ({found.frames} frames, strength {found.strength:.1f})")
        if record is None:
            click.echo(f"no session with this watermark in {path}: it was made elsewhere or by the Python API")
        else:
            for name, value in zip(SESSION_COLUMNS, _session_row(record), strict=True):
                click.echo(f"  {name:14} {value}")
            click.echo(f"  {'session id':14} {record.id}")
            click.echo(f"  {'consent':14} {record.consent}")
    if found.payload is None:
        sys.exit(EXIT_NO_WATERMARK)
