"""Training clips: real talking videos (tracked motion) and synthetic speech (phoneme targets).

A ``Clip`` is motion targets on the 25 fps grid plus versions of its audio (clean and augmented),
each as log-mel and as phonetic-track rows (``sonic_rt.audio.phonetic``), padded so that frame ``f``'s
contexts are ``mel[4f : 4f + mel_span]`` and ``phones[4f : 4f + phone_span]``. The phones are
what the model will see at run time: for real videos (and speech from voices built from human
recordings) the streaming recogniser's labels, a fixed delay behind the audio, of that very
version of the audio; for espeak-ng's speech its exact phonemes on the clean version (the
server's own ``say``) and the recogniser's on the augmented ones. Which channels a clip
supervises is its ``channel_mask``: a video teaches every channel the model predicts; synthetic
speech teaches only the mouth (its head never moved).

Sources: ``video`` (``av2_*`` and ``av3_*`` clips whose audio is verified as the speaker's own,
with documented offsets corrected), ``grid`` (999 GRID sentences of one speaker, weighted so that
one voice does not drown the rest), ``tts``. The ``av_*`` videos are the lip-sync benchmark and
are never trained on, nor is any other footage of their speakers, and ``HELD_OUT`` clips are kept
out to be reported apart; ``drv_*`` videos have no usable speech and only give blink statistics.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio import HOP, MELS_PER_FRAME, SAMPLES_PER_FRAME, phonetic
from ..audio.features import SILENCE_LOG_MEL, log_mel
from ..audio.recognizer import recognize
from ..audio.tts import Phoneme
from ..measure import best_lag
from ..motion import vector
from ..motion.idle import BLINK_INTERVAL_RANGE, IdleParams
from ..motion.stream import MODEL_SILENT_CHANNELS
from . import augment, track

log = logging.getLogger("sonic_rt.train")

# Clips left out of training: the benchmark speakers (AOC, Klobuchar) and clips whose audio is
# not the on-screen speech or whose mouth moves in silence (notes in SOURCES_more.tsv).
EXCLUDE = ("aoc", "mouth_source", "reagan", "M024_level_2_surprised")
# Dev clips whose audio is the speaker's own, kept out of training and reported apart by the
# lip-sync benchmark beside the av_* clips (three speakers: a studio take, an address, a senator).
HELD_OUT = ("av2_mimictalk_Trump_10s", "av2_spectre_MEAD_W023_level_2_surprised_010", "av2_sadtalker_WDA_EdMarkey0_000")
MAX_LAG_FRAMES = 8
MIN_SHIFT_FRAMES = 2


@dataclass(frozen=True)
class Spans:
    """The model's context: mel and phonetic rows before and after a frame, the recogniser's delay."""

    mel_past: int
    mel_future: int
    phone_past: int
    phone_future: int
    phone_delay_ms: int

    @classmethod
    def of(cls, config) -> Spans:
        return cls(
            *(getattr(config, f) for f in ("mel_past", "mel_future", "phone_past", "phone_future", "phone_delay_ms"))
        )


@dataclass
class Clip:
    name: str
    motion: np.ndarray  # (n, DIM) absolute-mouth targets
    valid: np.ndarray  # (n,) frames usable as targets
    mels: list[np.ndarray]  # versions of (4n + span-ish, N_MELS) raw log-mel, frame f at row 4f
    phones: list[np.ndarray]  # the same versions as (4n + span-ish, FEATURES) phonetic rows
    channel_mask: np.ndarray  # (DIM,) 1 where supervised
    source: str
    info: dict = field(default_factory=dict)


def padded_mel(audio: np.ndarray, n_frames: int, past: int, future: int) -> np.ndarray:
    """Log-mel with ``past`` silent rows in front and enough audio for every frame's look-ahead."""
    need = n_frames * SAMPLES_PER_FRAME + (future + MELS_PER_FRAME) * HOP
    audio = np.pad(audio[:need], (0, max(0, need - len(audio))))
    mel = log_mel(audio)
    return np.concatenate([np.full((past, mel.shape[1]), SILENCE_LOG_MEL, np.float32), mel])


def padded_phones(rows: np.ndarray, n_frames: int, past: int, future: int) -> np.ndarray:
    """Phonetic rows ``(k, FEATURES)`` with ``past`` rest rows in front, cut or padded with rest
    to cover every frame's look-ahead (as ``padded_mel``)."""
    need = n_frames * MELS_PER_FRAME + future + MELS_PER_FRAME
    rows = rows[:need]
    return np.concatenate([phonetic.rest_rows(past), rows, phonetic.rest_rows(need - len(rows))])


class PhoneCache:
    """The recogniser's rows for an audio signal, kept on disk by the signal's hash (decoding an
    hour of audio takes minutes; the rows depend only on the samples and the delay)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def __call__(self, audio: np.ndarray, delay_ms: int) -> np.ndarray:
        audio = np.ascontiguousarray(audio, np.float32)
        key = hashlib.sha1(audio.tobytes() + str(delay_ms).encode()).hexdigest()[:20]
        path = self.folder / f"{key}.npz" if self.folder is not None else None
        if path is not None and path.exists():
            with np.load(path) as z:
                return phonetic.encode(z["classes"], z["confidence"])
        classes, confidence = recognize(audio, delay_ms)
        if path is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, classes=classes.astype(np.int8), confidence=confidence)
        return phonetic.encode(classes, confidence)


Recognised = Callable[[np.ndarray, int], np.ndarray]


def versions(
    audio: np.ndarray,
    n_frames: int,
    spans: Spans,
    n_aug: int,
    rng,
    phones: Recognised,
    script: Sequence[Phoneme] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Mel and phonetic rows of the clean audio and ``n_aug`` augmented copies. With a ``script``
    (exact phonemes) the clean version's rows come from it, the others are recognised."""
    mels, rows = [], []
    for i in range(n_aug + 1):
        x = audio if i == 0 else augment.augment(audio, rng)
        mels.append(padded_mel(x, n_frames, spans.mel_past, spans.mel_future))
        if i == 0 and script is not None:
            k = len(x) // HOP
            raw = phonetic.encode(phonetic.script_rows(script, 0, k), np.ones(k, np.float32))
        else:
            raw = phones(x, spans.phone_delay_ms)
        rows.append(padded_phones(raw, n_frames, spans.phone_past, spans.phone_future))
    return mels, rows


def _model_mask(channels: tuple[str, ...] | None = None) -> np.ndarray:
    mask = np.ones(vector.DIM, np.float32) if channels is None else np.zeros(vector.DIM, np.float32)
    if channels is not None:
        mask[[vector.INDEX[c] for c in channels]] = 1.0
    mask[[vector.INDEX[c] for c in MODEL_SILENT_CHANNELS]] = 0.0
    return mask


def tracked_clips(
    data_dir: Path, cache_dir: Path, prefixes: tuple[str, ...], own_speech_only: bool = False
) -> list[track.TrackedClip]:
    """Track (or load from the cache) every video whose name starts with one of ``prefixes``
    (with ``own_speech_only``: whose audio is verified as the speaker's own, not ``HELD_OUT``)."""
    from ..face.analysis import FaceAnalyzer

    analyzer = functools.cache(FaceAnalyzer)  # loaded only if some clip is not cached yet
    own = own_speech(data_dir)
    return [
        track.load_or_track(path, cache_dir, analyzer)
        for path in sorted((data_dir / "videos").glob("*.mp4"))
        if path.name.startswith(prefixes)
        and not any(x in path.name for x in EXCLUDE)
        and (not own_speech_only or (path.stem in own and path.stem not in HELD_OUT))
    ]


def grid_clips(data_dir: Path, cache_dir: Path, limit: int | None = None) -> list[track.TrackedClip]:
    """The GRID s1 sentences (``grid_s1/videos``), tracked or from the cache; ``[]`` when absent."""
    from ..face.analysis import FaceAnalyzer

    analyzer = functools.cache(FaceAnalyzer)
    paths = sorted((data_dir / "grid_s1" / "videos").glob("*.mp4"))[:limit]
    return [track.load_or_track(path, cache_dir / "grid_s1", analyzer) for path in paths]


def own_speech(data_dir: Path) -> set[str]:
    """Clips whose last column in SOURCES_more.tsv / SOURCES_av3.tsv is ``yes``: the audio was
    verified as the on-screen speaker's own speech."""
    out = set()
    for name in ("SOURCES_more.tsv", "SOURCES_av3.tsv"):
        table = data_dir / name
        if table.is_file():
            for line in table.read_text().splitlines()[1:]:
                cols = line.split("\t")
                if cols[-1].strip() == "yes":
                    out.add(Path(cols[0]).stem)
    return out


def video_clip(
    tc: track.TrackedClip,
    lags: dict[str, int],
    spans: Spans,
    n_aug: int,
    rng,
    phones: Recognised,
    source: str = "video",
) -> Clip | None:
    """A training clip from a tracked video, its audio moved by ``sync_shift``; None when the
    clip has no audio or too few frames with a face."""
    points, valid = track.fill_gaps(tc.landmarks.astype(np.float64))
    if valid.sum() < 50 or len(tc.audio) == 0:
        return None
    targets = track.smooth_targets(track.motion_targets(points))
    n = len(targets)
    # mouth vs loudness: measured and reported beside the documented offsets, not used to shift
    env = track.speech_envelope(tc.audio, n)
    lag, r = best_lag(env[valid], targets[valid, vector.INDEX["jaw_open"]], MAX_LAG_FRAMES)
    shift = sync_shift(tc.name, lags)
    audio = tc.audio
    if shift:
        # the audio comes |shift| frames late: advance it (or delay it when early)
        samples = shift * SAMPLES_PER_FRAME
        audio = audio[-samples:] if samples < 0 else np.concatenate([np.zeros(samples, np.float32), audio])
    if source == "video":
        log.info("video %-48s %5d frames  measured lag %+d (r %.2f)  shift %+d", tc.name, n, lag, r, shift)
    mels, rows = versions(audio, n, spans, n_aug, rng, phones)
    return Clip(
        name=tc.name,
        motion=targets,
        valid=valid,
        mels=mels,
        phones=rows,
        channel_mask=_model_mask(),
        source=source,
        info={"lag_frames": lag, "lag_r": r, "shift_frames": shift},
    )


def documented_lags(data_dir: Path) -> dict[str, int]:
    """Per-clip sync peaks from SOURCES_more.tsv's notes (``... @-3fr ...``) and SOURCES_av3.tsv's
    ``coupling_lag_ms`` (rounded to frames; left out where the notes call the estimate noisy),
    frames; negative means the audio comes late. Clips without a figure are absent."""
    out = {}
    table = data_dir / "SOURCES_more.tsv"
    if table.is_file():
        for line in table.read_text().splitlines()[1:]:
            cols = line.split("\t")
            found = re.search(r"(?:@|at )(-?\d+)(?:/-?\d+)?fr", line)
            if found and "inconclusive" not in cols[-2].split(";")[-1]:
                out[Path(cols[0]).stem] = int(found.group(1))
    table = data_dir / "SOURCES_av3.tsv"
    if table.is_file():
        lines = table.read_text().splitlines()
        header = lines[0].split("\t") if lines else []
        if "coupling_lag_ms" in header and "notes" in header:
            lag_col, notes_col = header.index("coupling_lag_ms"), header.index("notes")
            for line in lines[1:]:
                cols = line.split("\t")
                if len(cols) > max(lag_col, notes_col) and "noisy" not in cols[notes_col]:
                    out[Path(cols[0]).stem] = round(float(cols[lag_col]) / 40.0)
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
        both = targets[:, [vector.INDEX["blink_left"], vector.INDEX["blink_right"]]].min(axis=1)
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


# espeak-ng voices for synthetic speech, by the language of the sentence pool (``sentences.corpus``)
ESPEAK_VOICES = {"en": ("en-us", "en-gb"), "zh": ("cmn",), "fr": ("fr",), "de": ("de",), "es": ("es",)}
LANGUAGE_SHARE = {"en": 0.5, "zh": 0.26, "fr": 0.08, "de": 0.08, "es": 0.08}
VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+f1", "+f2", "+f3", "+f4")


def speech_clip(name: str, parts: list, spans: Spans, n_aug: int, rng, phones: Recognised, scripted: bool) -> Clip:
    """A synthetic clip from ``tts.Speech`` parts spoken one after another with pauses between:
    mouth targets from their phonemes; with ``scripted`` the clean version's phonetic rows are
    the phonemes themselves (as for the server's own speech), else every version is recognised."""
    from .visemes import targets as viseme_targets

    audio_parts, mouth_parts, script, t = [], [], [], 0.0
    for speech in parts:
        frames = len(speech.audio) // SAMPLES_PER_FRAME
        audio_parts.append(speech.audio[: frames * SAMPLES_PER_FRAME])
        mouth_parts.append(viseme_targets(speech.phonemes, frames))
        script += [Phoneme(p.symbol, p.start + t, p.end + t) for p in speech.phonemes]
        pause = int(rng.integers(3, 30))
        audio_parts.append(np.zeros(pause * SAMPLES_PER_FRAME, np.float32))
        mouth_parts.append(vector.neutral(pause))
        t += (frames + pause) * SAMPLES_PER_FRAME / 16000
    audio = np.concatenate(audio_parts)
    audio = audio + rng.standard_normal(len(audio)).astype(np.float32) * 10 ** (rng.uniform(-5, -3.5))
    targets = np.concatenate(mouth_parts)
    mels, rows = versions(audio, len(targets), spans, n_aug, rng, phones, script if scripted else None)
    return Clip(
        name=name,
        motion=targets,
        valid=np.ones(len(targets), bool),
        mels=mels,
        phones=rows,
        channel_mask=_model_mask(vector.MOUTH_CHANNELS),
        source="tts",
    )


def tts_clips(
    sentences: list[tuple[str, str]], n: int, spans: Spans, n_aug: int, rng, phones: Recognised
) -> list[Clip]:
    """``n`` espeak-ng utterances: 1-3 sentences in one voice with pauses between, mouth targets
    from espeak-ng's phoneme timings, the clean version's phones given exactly."""
    from ..audio.tts import synthesize

    languages = [lang for lang in LANGUAGE_SHARE if any(s_lang == lang for s_lang, _ in sentences)]
    share = np.array([LANGUAGE_SHARE[lang] for lang in languages])
    out = []
    for i in range(n):
        lang = str(rng.choice(languages, p=share / share.sum()))
        voice = str(rng.choice(ESPEAK_VOICES[lang])) + str(rng.choice(VARIANTS))
        pool = [s for s_lang, s in sentences if s_lang == lang]
        rate, pitch = int(rng.integers(130, 230)), int(rng.integers(25, 80))
        parts = [
            synthesize(str(rng.choice(pool)), voice=voice, rate=rate, pitch=pitch)
            for _ in range(int(rng.integers(1, 4)))
        ]
        out.append(speech_clip(f"tts_{i:04d}_{voice}", parts, spans, n_aug, rng, phones, scripted=True))
    return out


def voice_clips(
    sentences: list[tuple[str, str]], n: int, spans: Spans, n_aug: int, rng, phones: Recognised
) -> list[Clip]:
    """``n`` English utterances of the voices built from human recordings (festival, flite;
    ``sonic_rt.train.voices``), phones recognised as for any audio; ``[]`` when none is installed."""
    if n <= 0:
        return []
    from . import voices

    names = voices.available()
    if not names:
        log.info("no festival/flite voice installed: no such clips")
        return []
    pool = [s for s_lang, s in sentences if s_lang == "en"]
    out = []
    for i in range(n):
        voice = str(rng.choice(names))
        parts = [
            voices.synthesize(str(rng.choice(pool)), voice=voice, stretch=float(rng.uniform(0.85, 1.25)))
            for _ in range(int(rng.integers(1, 3)))
        ]
        out.append(speech_clip(f"voice_{i:04d}_{voice}", parts, spans, n_aug, rng, phones, scripted=False))
    return out
