"""Training clips: real talking videos (tracked motion) and synthetic speech (phoneme targets).

A ``Clip`` is motion targets on the 25 fps grid plus log-mel versions of its audio (clean and
augmented), padded so that frame ``f``'s mel context is ``mel[4f : 4f + span]``. Which channels
a clip supervises is its ``channel_mask``: a video teaches every channel the model predicts;
synthetic speech teaches only the mouth (its head never moved).

The ``av_*`` videos are the lip-sync benchmark and are never trained on, nor is any other
footage of their speakers; ``drv_*`` videos have no usable speech and only give blink
statistics.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import motion
from ..audio import MELS_PER_FRAME, SAMPLES_PER_FRAME
from ..features import SILENCE_LOG_MEL, log_mel
from ..idle import BLINK_INTERVAL_RANGE, IdleParams
from ..measure import best_lag
from ..motion_stream import MODEL_SILENT_CHANNELS
from . import augment, track

log = logging.getLogger("sonic_rt.train")

# Clips left out of training: the benchmark speakers (AOC, Klobuchar) and clips whose audio is
# not the on-screen speech or whose mouth moves in silence (notes in SOURCES_more.tsv).
EXCLUDE = ("aoc", "mouth_source", "reagan", "M024_level_2_surprised")
MAX_LAG_FRAMES = 8
MIN_SHIFT_FRAMES = 2


@dataclass
class Clip:
    name: str
    motion: np.ndarray  # (n, DIM) absolute-mouth targets
    valid: np.ndarray  # (n,) frames usable as targets
    mels: list[np.ndarray]  # versions of (4n + span-ish, N_MELS) raw log-mel, frame f at row 4f
    channel_mask: np.ndarray  # (DIM,) 1 where supervised
    source: str
    info: dict = field(default_factory=dict)


def padded_mel(audio: np.ndarray, n_frames: int, past: int, future: int) -> np.ndarray:
    """Log-mel with ``past`` silent rows in front and enough audio for every frame's look-ahead."""
    need = n_frames * SAMPLES_PER_FRAME + (future + MELS_PER_FRAME) * 160
    audio = np.pad(audio[:need], (0, max(0, need - len(audio))))
    mel = log_mel(audio)
    return np.concatenate([np.full((past, mel.shape[1]), SILENCE_LOG_MEL, np.float32), mel])


def mel_versions(audio: np.ndarray, n_frames: int, past: int, future: int, n_aug: int, rng) -> list[np.ndarray]:
    out = [padded_mel(audio, n_frames, past, future)]
    for _ in range(n_aug):
        out.append(padded_mel(augment.augment(audio, rng), n_frames, past, future))
    return out


def _model_mask(channels: tuple[str, ...] | None = None) -> np.ndarray:
    mask = np.ones(motion.DIM, np.float32) if channels is None else np.zeros(motion.DIM, np.float32)
    if channels is not None:
        mask[[motion.INDEX[c] for c in channels]] = 1.0
    mask[[motion.INDEX[c] for c in MODEL_SILENT_CHANNELS]] = 0.0
    return mask


def tracked_clips(data_dir: Path, cache_dir: Path, prefixes: tuple[str, ...]) -> list[track.TrackedClip]:
    """Track (or load from the cache) every video whose name starts with one of ``prefixes``."""
    from ..face import FaceAnalyzer

    analyzer = functools.cache(FaceAnalyzer)  # loaded only if some clip is not cached yet
    return [
        track.load_or_track(path, cache_dir, analyzer)
        for path in sorted((data_dir / "videos").glob("*.mp4"))
        if path.name.startswith(prefixes) and not any(x in path.name for x in EXCLUDE)
    ]


def video_clip(tc: track.TrackedClip, lags: dict[str, int], past: int, future: int, n_aug: int, rng) -> Clip | None:
    """A training clip from a tracked video, its audio moved by ``sync_shift``; None when the
    clip has no audio or too few frames with a face."""
    points, valid = track.fill_gaps(tc.landmarks.astype(np.float64))
    if valid.sum() < 50 or len(tc.audio) == 0:
        return None
    targets = track.smooth_targets(track.motion_targets(points))
    n = len(targets)
    # mouth vs loudness: measured and reported beside the documented offsets, not used to shift
    env = track.speech_envelope(tc.audio, n)
    lag, r = best_lag(env[valid], targets[valid, motion.INDEX["jaw_open"]], MAX_LAG_FRAMES)
    shift = sync_shift(tc.name, lags)
    audio = tc.audio
    if shift:
        # the audio comes |shift| frames late: advance it (or delay it when early)
        samples = shift * SAMPLES_PER_FRAME
        audio = audio[-samples:] if samples < 0 else np.concatenate([np.zeros(samples, np.float32), audio])
    log.info("video %-48s %5d frames  measured lag %+d (r %.2f)  shift %+d", tc.name, n, lag, r, shift)
    return Clip(
        name=tc.name,
        motion=targets,
        valid=valid,
        mels=mel_versions(audio, n, past, future, n_aug, rng),
        channel_mask=_model_mask(),
        source="video",
        info={"lag_frames": lag, "lag_r": r, "shift_frames": shift},
    )


def documented_lags(data_dir: Path) -> dict[str, int]:
    """Per-clip sync peaks from SOURCES_more.tsv's notes (``... @-3fr ...``), frames; negative
    means the audio comes late. Clips without a figure are absent."""
    out = {}
    table = data_dir / "SOURCES_more.tsv"
    if not table.is_file():
        return out
    for line in table.read_text().splitlines()[1:]:
        cols = line.split("\t")
        found = re.search(r"(?:@|at )(-?\d+)(?:/-?\d+)?fr", line)
        if found and "inconclusive" not in cols[-2].split(";")[-1]:
            out[Path(cols[0]).stem] = int(found.group(1))
    return out


def sync_shift(name: str, lags: dict[str, int]) -> int:
    """Frames to move a clip's audio so its documented sync peak sits at the typical one (the
    median over documented clips: the natural lead of the mouth over the sound). Shifts under
    ``MIN_SHIFT_FRAMES`` are left alone."""
    typical = int(np.median(list(lags.values()))) if lags else 0
    shift = lags.get(name, typical) - typical
    return shift if abs(shift) >= MIN_SHIFT_FRAMES else 0


def idle_statistics(clips: list[track.TrackedClip]) -> tuple[IdleParams, dict[str, float]]:
    """Blink rate and length over every tracked clip -> the idle layer's parameters."""
    count, seconds, lengths = 0.0, 0.0, []
    for tc in clips:
        points, valid = track.fill_gaps(tc.landmarks.astype(np.float64))
        if valid.sum() < 100:
            continue
        targets = track.motion_targets(points)
        both = targets[:, [motion.INDEX["blink_left"], motion.INDEX["blink_right"]]].min(axis=1)
        stats = track.blink_statistics(both)
        count += stats["count"]
        seconds += stats["seconds"]
        if np.isfinite(stats["length_median"]):
            lengths.append(stats["length_median"])
    measured = {"blinks": count, "seconds": round(seconds, 1), "per_minute": round(60 * count / max(seconds, 1), 1)}
    if count < 10:
        return IdleParams(), measured
    interval = seconds / count
    length = float(np.median(lengths)) + 0.1  # lids pass the threshold for the middle of the blink only
    lo, hi = BLINK_INTERVAL_RANGE
    params = IdleParams(blink_interval=float(np.clip(interval, lo, hi)), blink_length=float(np.clip(length, 0.12, 0.4)))
    measured.update(mean_interval=round(interval, 2), closed_length_median=round(length - 0.1, 3))
    return params, measured


def tts_clips(sentences: list[tuple[str, str]], n: int, past: int, future: int, n_aug: int, rng) -> list[Clip]:
    """``n`` synthetic utterances: 1-3 sentences in one voice with pauses between, mouth targets
    from espeak-ng's phoneme timings."""
    from ..tts import synthesize
    from .visemes import targets as viseme_targets

    out = []
    for i in range(n):
        lang = "cmn" if rng.random() < 0.35 else str(rng.choice(["en-us", "en-gb"]))
        variant = str(rng.choice(["", "+m1", "+m2", "+m3", "+m4", "+f1", "+f2", "+f3", "+f4"]))
        voice = lang + variant
        pool = [s for s_lang, s in sentences if s_lang == ("zh" if lang == "cmn" else "en")]
        rate, pitch = int(rng.integers(130, 230)), int(rng.integers(25, 80))
        audio_parts, mouth_parts = [], []
        for _ in range(int(rng.integers(1, 4))):
            speech = synthesize(str(rng.choice(pool)), voice=voice, rate=rate, pitch=pitch)
            frames = len(speech.audio) // SAMPLES_PER_FRAME
            audio_parts.append(speech.audio[: frames * SAMPLES_PER_FRAME])
            mouth_parts.append(viseme_targets(speech.phonemes, frames))
            pause = int(rng.integers(3, 30))
            audio_parts.append(np.zeros(pause * SAMPLES_PER_FRAME, np.float32))
            mouth_parts.append(motion.neutral(pause))
        audio = np.concatenate(audio_parts)
        audio = audio + rng.standard_normal(len(audio)).astype(np.float32) * 10 ** (rng.uniform(-5, -3.5))
        targets = np.concatenate(mouth_parts)
        out.append(
            Clip(
                name=f"tts_{i:04d}_{voice}",
                motion=targets,
                valid=np.ones(len(targets), bool),
                mels=mel_versions(audio, len(targets), past, future, n_aug, rng),
                channel_mask=_model_mask(motion.MOUTH_CHANNELS),
                source="tts",
            )
        )
    return out
