"""Photo + audio file -> talking video: a streaming run of the ``Animator`` fed from the file.

``prepare`` checks everything before any work is done — the portrait is enrolled, the audio is
read through once (its exact length and peak, with flat memory) and the video length is
settled against ``duration`` — and returns a ``Job``. ``Job.chunks()`` then decodes the audio a
few frames at a time and pushes it through the same ``Animator`` the live server uses;
``generate`` streams those frames and the audio into an MP4 as they come, so nothing ever holds
the whole video.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import audio
from .animator import Animator, Frame, frames_for_samples
from .audio import decode
from .audio.phonetic import script_slice
from .audio.timings import BadTimings, Mark, covered
from .audio.tts import Speech
from .config import OFFLINE_BLOCK_FRAMES, GeometryParams, MotionParams, VideoParams
from .errors import AudioTooLong, BadAudioChunk, DurationMismatch, EmptyAudio, OutputError, SilentAudio
from .media.mp4 import ThreadedMp4Writer
from .provenance.marks import Marks
from .render.identity import Identity, enroll

CHUNK_SAMPLES = 5 * audio.SAMPLES_PER_FRAME  # audio pushed per step: 200 ms
SILENCE_PEAK = 10 ** (-60 / 20)  # below -60 dBFS at its loudest, the audio is taken for silence
TIMINGS_SLACK_S = 0.02  # timings may end this much after the audio (a TTS's rounding)
MAX_DURATION_S = 24 * 3600.0  # the longest video, and the longest audio read (a 4 KB WAV at 1 Hz is 33 min)


@dataclass(frozen=True)
class JobParams:
    """Everything an offline run takes besides its inputs.

    ``duration`` seconds of video (default: the audio's length; more than one frame away from it
    is an error unless ``pad`` (hold the face idle over silence) or ``trim`` (cut the audio) is
    asked for); ``allow_silence`` accepts audio that is silent throughout (the face only idles).
    """

    geometry: GeometryParams = field(default_factory=GeometryParams)
    motion: MotionParams = field(default_factory=lambda: MotionParams(block_frames=OFFLINE_BLOCK_FRAMES))
    video: VideoParams = field(default_factory=VideoParams)
    duration: float | None = None
    pad: bool = False
    trim: bool = False
    allow_silence: bool = False

    def __post_init__(self) -> None:
        if self.duration is not None and not 0 < self.duration <= MAX_DURATION_S:
            raise ValueError(f"duration must be in (0, {MAX_DURATION_S:g}] seconds, got {self.duration}")
        for name in ("pad", "trim", "allow_silence"):
            if not isinstance(getattr(self, name), bool):  # "false" from JSON would be true
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def from_flat(cls, **values) -> JobParams:
        """Build from flat Sonic-style names (``min_resolution=..., seed=..., fps=...``); what is not
        given keeps ``JobParams()``'s value (offline motion defaults included)."""
        defaults = cls()
        groups = {name: getattr(defaults, name) for name in ("geometry", "motion", "video")}
        split: dict[str, dict] = {name: {} for name in groups}
        top = {}
        for key, value in values.items():
            group = next((g for g, params in groups.items() if key in _field_names(params)), None)
            if group is not None:
                split[group][key] = value
            elif key in _field_names(cls) - groups.keys():
                top[key] = value
            else:
                raise TypeError(f"unknown parameter {key!r}")
        return cls(**{g: dataclasses.replace(params, **split[g]) for g, params in groups.items()}, **top)

    def to_flat(self) -> dict:
        """Every parameter by its flat name (the inverse of ``from_flat``), as the audit log records them."""
        nested = dataclasses.asdict(self)
        return {k: v for group in ("geometry", "motion", "video") for k, v in nested.pop(group).items()} | nested


def _field_names(kind) -> set[str]:
    return {f.name for f in dataclasses.fields(kind)}


@dataclass(frozen=True)
class AudioInfo:
    samples: int  # 16 kHz samples
    peak: float  # largest absolute sample

    @property
    def seconds(self) -> float:
        return self.samples / audio.SAMPLE_RATE


@dataclass(frozen=True)
class Timed:
    """Audio with the phoneme or viseme timings of the TTS that spoke it (``sonic_rt.audio.timings``):
    they drive the phonetic track where they cover the audio, the recogniser the rest."""

    audio: str | Path | bytes | np.ndarray
    marks: tuple[Mark, ...]


# a file, its bytes, 16 kHz mono float32 samples, or the embedded text-to-speech's speech (whose
# phonemes are then the phonetic track: nothing needs recognising), or audio with its timings
AudioSource = str | Path | bytes | np.ndarray | Speech | Timed


def iter_source(source: AudioSource, chunk_samples: int = decode.CHUNK_SAMPLES) -> Iterator[np.ndarray]:
    """16 kHz mono float32 pieces of a file (decoded lazily) or of an array of samples."""
    if isinstance(source, Speech | Timed):
        source = source.audio
    if not isinstance(source, np.ndarray):
        yield from decode.iter_audio(source, chunk_samples)
        return
    samples = np.asarray(source)
    if samples.ndim != 1 or samples.dtype != np.float32:
        raise BadAudioChunk(f"audio samples must be a (n,) float32 array at 16 kHz, got {samples.dtype}{samples.shape}")
    if not np.isfinite(samples).all():
        raise BadAudioChunk("audio samples contain NaN or infinite values")
    if not len(samples):
        raise EmptyAudio("the audio has no samples")
    for start in range(0, len(samples), chunk_samples):
        yield np.clip(samples[start : start + chunk_samples], -1.0, 1.0)


def probe_audio(source: AudioSource) -> AudioInfo:
    """Decode the whole file once, keeping only its length and peak (flat memory); audio with no
    samples raises ``EmptyAudio``, audio longer than ``MAX_DURATION_S`` ``AudioTooLong`` (as soon
    as that much has been read)."""
    samples, peak = 0, 0.0
    for piece in iter_source(source):
        samples += len(piece)
        if samples > MAX_DURATION_S * audio.SAMPLE_RATE:
            raise AudioTooLong(f"the audio is longer than {MAX_DURATION_S / 3600:g} hours: cut it into parts")
        peak = max(peak, float(np.abs(piece).max()))
    return AudioInfo(samples, peak)


def settle_length(info: AudioInfo, params: JobParams) -> tuple[int, int]:
    """``(frames, samples)``: the video's length in frames and how much of the audio it uses."""
    fps = params.video.fps
    if params.duration is None:
        return frames_for_samples(info.samples, fps), info.samples
    frames = max(1, round(params.duration * fps))
    excess = params.duration - info.seconds
    if excess > 1 / fps and not params.pad:
        raise DurationMismatch(
            f"duration {params.duration:.3f} s is {excess:.3f} s longer than the audio ({info.seconds:.3f} s); "
            "pass --pad (pad=True) to hold the face idle over silence for the rest, or leave the duration out"
        )
    if -excess > 1 / fps and not params.trim:
        raise DurationMismatch(
            f"duration {params.duration:.3f} s is {-excess:.3f} s shorter than the audio ({info.seconds:.3f} s); "
            "pass --trim (trim=True) to cut the audio there, or leave the duration out"
        )
    return frames, min(info.samples, _samples_for_frames(frames, fps))


def _samples_for_frames(frames: int, fps: int) -> int:
    return round(frames * audio.SAMPLE_RATE / fps)


@functools.cache
def _face_analyzer():
    from .face.analysis import FaceAnalyzer

    return FaceAnalyzer()


@functools.cache
def _motion_model():
    from .motion.stream import load_model

    return load_model()


Portrait = str | Path | bytes | np.ndarray | Identity


def load_portrait(portrait: Portrait, geometry: GeometryParams) -> Identity:
    """Enrol a portrait given as a path, ``sample:NAME``, encoded bytes or an RGB uint8 array;
    an ``Identity`` (enrolled before) is used as it is, with the geometry it was made with."""
    from .face.samples import is_sample, load_sample

    if isinstance(portrait, Identity):
        return portrait
    if isinstance(portrait, str | Path) and is_sample(portrait):
        portrait = load_sample(portrait)
    return enroll(portrait, geometry, _face_analyzer())


@dataclass
class Chunk:
    """One step of a run: the audio that belongs to the output (``(n,)`` float32, 16 kHz, silence
    where padded) and the frames completed with it."""

    audio: np.ndarray
    frames: list[Frame]


@dataclass
class Job:
    """A checked offline run, ready to stream."""

    identity: Identity
    audio_source: AudioSource
    params: JobParams
    info: AudioInfo
    frames: int  # output frames
    audio_used: int  # samples of the source used
    timings_ms: dict[str, float] = field(default_factory=dict)
    marks: Marks = field(default_factory=Marks)  # the watermark every frame carries, and the label

    @property
    def fps(self) -> int:
        return self.params.video.fps

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    @property
    def audio_out(self) -> int:
        """Samples of 16 kHz audio that go with the video: its length exactly, to the sample."""
        return _samples_for_frames(self.frames, self.fps)

    def chunks(self) -> Iterator[Chunk]:
        """Decode, animate and render, a few frames at a time; ``timings_ms`` fills in as it goes."""
        t0 = time.perf_counter()
        model, idle = _motion_model()
        animator = Animator(self.identity, model, idle, self.params.motion, self.params.video, marks=self.marks)
        self.timings_ms["load_model"] = (time.perf_counter() - t0) * 1e3
        self.timings_ms["decode"] = 0.0
        emitted = 0

        def step(samples: np.ndarray, frames: list[Frame]) -> Chunk:
            nonlocal emitted
            frames = frames[: self.frames - emitted]
            emitted += len(frames)
            self.timings_ms.update(animator.timings_ms)
            return Chunk(samples, frames)

        remaining = self.audio_used
        pieces = iter_source(self.audio_source, CHUNK_SAMPLES)
        spoken = self.audio_source.phonemes if isinstance(self.audio_source, Speech) else None
        timed = self.audio_source.marks if isinstance(self.audio_source, Timed) else None
        while remaining > 0:
            t0 = time.perf_counter()
            piece = next(pieces, None)
            self.timings_ms["decode"] += (time.perf_counter() - t0) * 1e3
            if piece is None:
                break
            piece = piece[:remaining]
            start = (self.audio_used - remaining) / audio.SAMPLE_RATE
            remaining -= len(piece)
            if timed is not None:  # covered parts with their marks, the rest recognised
                yield step(piece, _push_timed(animator, piece, timed, start))
                continue
            script = None if spoken is None else script_slice(spoken, start)
            yield step(piece, animator.push(piece, script))
        pieces.close()
        silence = self.audio_out - (self.audio_used - remaining)
        for start in range(0, silence, CHUNK_SAMPLES):
            gap = np.zeros(min(CHUNK_SAMPLES, silence - start), np.float32)
            yield step(gap, animator.push(gap, None if spoken is None else ()))
        yield step(np.zeros(0, np.float32), animator.finish(self.frames))


def _push_timed(animator: Animator, piece: np.ndarray, marks: tuple[Mark, ...], start: float) -> list[Frame]:
    """Push ``piece`` (from ``start`` seconds) cut where ``marks`` cover it."""
    frames = []
    for lo, hi, inside in covered(marks, start, start + len(piece) / audio.SAMPLE_RATE):
        a, b = round((lo - start) * audio.SAMPLE_RATE), round((hi - start) * audio.SAMPLE_RATE)
        if b > a:
            frames += animator.push(piece[a:b], script_slice(marks, lo, hi) if inside else None)
    return frames


def prepare(portrait: Portrait, audio_source: AudioSource, params: JobParams | None = None,
            marks: Marks | None = None) -> Job:  # fmt: skip
    """Check the inputs and settle the video's length; raises a ``SonicError`` on bad input.
    ``marks``: the watermark payload and label (default: a fresh random payload, no label)."""
    params = params or JobParams()
    t0 = time.perf_counter()
    info = probe_audio(audio_source)
    t1 = time.perf_counter()
    if info.peak < SILENCE_PEAK and not params.allow_silence:
        level = "digital silence" if info.peak == 0 else f"a peak of {20 * np.log10(info.peak):.0f} dBFS"
        raise SilentAudio(
            f"the audio is silent throughout ({level}); the face would only idle. "
            "Pass --allow-silence (allow_silence=True) if that is what you want"
        )
    if isinstance(audio_source, Timed):
        _check_timings(audio_source.marks, info.seconds)
    frames, used = settle_length(info, params)
    t2 = time.perf_counter()
    identity = load_portrait(portrait, params.geometry)
    t3 = time.perf_counter()
    timings = {"probe_audio": (t1 - t0) * 1e3, "enroll": (t3 - t2) * 1e3}
    return Job(identity, audio_source, params, info, frames, used, timings, marks or Marks())


def _check_timings(marks: tuple[Mark, ...], seconds: float) -> None:
    ends = [m.end for m in marks if math.isfinite(m.end)]
    last = max([m.start for m in marks] + ends, default=0.0)
    if last > seconds + TIMINGS_SLACK_S:
        raise BadTimings(
            f"the timings run to {last * 1e3:.0f} ms, past the end of the audio ({seconds * 1e3:.0f} ms): "
            "are they this audio's?"
        )


@dataclass(frozen=True)
class Result:
    """What ``generate`` made: ``frames`` at ``fps`` (``seconds`` of video) in ``wall_s``, every
    frame watermarked with the payload ``watermark``."""

    output: Path
    frames: int
    fps: int
    seconds: float
    wall_s: float
    timings_ms: dict[str, float]
    watermark: int

    @property
    def realtime_factor(self) -> float:
        """Seconds of video made per second of wall time."""
        return self.seconds / self.wall_s if self.wall_s > 0 else float("inf")


def generate(
    portrait: Portrait,
    audio_source: AudioSource,
    output: str | Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    crf: int = 20,
    watermark: int | None = None,
    label: bool = False,
    **params,
) -> Result:
    """Write a talking video of ``portrait`` speaking ``audio_source`` to ``output`` (MP4).

    ``params`` are Sonic's, by name: ``duration``, ``pad``, ``trim``, ``min_resolution``,
    ``expand_ratio``, ``inference_steps``, ``dynamic_scale``, ``motion_scale``,
    ``lip_sync_offset_ms``, ``smoothing``, ``seed``, ``fps`` (and ``guidance``, ``block_frames``,
    ``allow_silence``). Every frame carries the invisible watermark ``watermark`` (a 32-bit
    payload; default: a fresh random one, given back in ``Result.watermark``) and, with
    ``label``, a visible "AI-generated" label. ``progress(done, total)`` is called as frames
    are written. The file appears only when complete: a failed run leaves nothing behind and an
    existing file as it was.

    The motion model is small: it runs fastest with ``torch.set_num_threads(1)``, which the
    command line sets; a library call leaves torch's threading as the caller has it.
    """
    t_start = time.perf_counter()
    job_params = JobParams.from_flat(**params)
    output = Path(output)
    _check_output(output)
    marks = Marks(label=label) if watermark is None else Marks(watermark, label)
    job = prepare(portrait, audio_source, job_params, marks)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    writer = None
    try:
        writer = ThreadedMp4Writer(tmp, job.identity.out_size, job.fps, crf=crf)
        done = 0
        for chunk in job.chunks():
            writer.write_audio(chunk.audio)
            for frame in chunk.frames:
                writer.write_frame(frame.image)
            done += len(chunk.frames)
            if progress is not None and chunk.frames:
                progress(done, job.frames)
        writer.close()
        os.replace(tmp, output)
    except BaseException:
        if writer is not None:
            writer.abort()
        tmp.unlink(missing_ok=True)
        raise
    timings = {**job.timings_ms, "encode": writer.encode_ms}
    return Result(output, done, job.fps, job.seconds, time.perf_counter() - t_start, timings, marks.watermark)


def _check_output(output: Path) -> None:
    if output.is_dir():
        raise OutputError(f"{output} is a directory; give a file name such as {output / 'out.mp4'}")
    if not output.parent.is_dir():
        raise OutputError(f"no such folder: {output.parent}")
    if not os.access(output.parent, os.W_OK):
        raise OutputError(f"cannot write to {output.parent}")
