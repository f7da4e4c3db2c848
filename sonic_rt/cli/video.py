"""``generate``: a talking video of a portrait, from an audio file or text, recorded in the audit log."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import click

from ..config import (
    BLOCK_FRAMES_RANGE,
    FPS_RANGE,
    INFERENCE_STEPS_RANGE,
    LIP_SYNC_OFFSET_MS,
    LIP_SYNC_OFFSET_RANGE_MS,
    OFFLINE_BLOCK_FRAMES,
    SCALE_RANGE,
    SMOOTHING_RANGE,
    MotionParams,
    VideoParams,
)
from ..errors import ConsentRequired
from .options import exit_on_bad_input, portrait_source, with_geometry


@click.command()
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
    from ..provenance.audit import AuditLog, default_path

    if (audio is None) == (say is None):
        raise click.UsageError("give either an AUDIO file or --say TEXT")
    if phonemes is not None and say is not None:
        raise click.UsageError("--phonemes goes with an AUDIO file (--say knows its own phonemes)")
    with exit_on_bad_input():
        attestation = _consent(portrait, consent)
        marks = None if phonemes is None else _timings(phonemes)
        log = AuditLog(audit_db or default_path())
    import torch  # only now: every refusal above comes without loading the models

    from ..offline import Timed
    from ..offline import generate as run

    torch.set_num_threads(1)  # a 1.2 M-parameter model: more threads only spin-wait
    recorded = {**params, "crf": crf, "label": label}
    if params["duration"] is None:
        del params["duration"]
    with log, _progress(quiet) as progress, exit_on_bad_input():
        image = portrait_source(portrait)
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
    from ..audio import timings  # here, not at the top: --help and the refusals before it answer without numpy

    return timings.load(path)


def _consent(portrait: str, given: bool) -> str:
    """The consent recorded for PORTRAIT: the attestation of --consent, or the samples' own."""
    from ..face.samples import is_sample
    from ..provenance.audit import CONSENT_ATTESTATION, SAMPLE_CONSENT

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
    from ..render.identity import sha256_of

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
    from ..audio.tts import synthesize

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
