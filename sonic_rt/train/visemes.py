"""Mouth targets from phoneme timings: synthetic training targets for the audio-to-motion model.

``targets(speech.phonemes, n_frames)`` turns espeak's phoneme intervals into per-frame values of
the five mouth channels; every other channel stays 0. For these targets ``jaw_open`` is the
*absolute* lip opening from closed lips (1 = lips 0.45 IOD apart): about 0 for /p b m/, 0.05-0.13
for other consonants, 0.1-0.28 for close and mid vowels, 0.36-0.44 for open ones. ``mouth_close``
stays 0; a bilabial closure is ``jaw_open == 0``.

Each phoneme mnemonic maps to one articulatory target, or a sequence for diphthongs and Mandarin
finals (``"aI"`` -> a, ɪ; ``"iAu"`` -> i, ɑ, ʊ). Coarticulation, in order:

1. each phoneme's targets are placed inside its articulatory span: the event interval, except
   that a voiceless stop or affricate closes up to 50 ms *before* its event (espeak marks the
   burst; the silent closure is the end of the previous phoneme) and a voiced stop is closed
   over the first 80 % of its interval. One target sits at the span's centre (a vowel of 120 ms
   or more holds it from 30 % to 70 %), a sequence is spread evenly, a bilabial closure is held
   over the whole span;
2. /h/, the glottal stop and pauses shorter than 60 ms are transparent (no target of their own);
   a longer pause eases to rest over 120 ms and leaves rest 100 ms before speech resumes;
3. lip width and rounding are set by vowels, pauses and /w ʃ ɹ/ only: other consonants leave
   them to their neighbours, so the lips stay round through the /b/ of "a boot". A rise in
   rounding starts 100 ms before the rounded target's span, not earlier (nor before the previous
   vowel's target);
4. per channel, a monotone cubic (PCHIP) through the targets that set it, sampled at each video
   frame's centre (frame n covers ``[n / fps, (n + 1) / fps)``); it reaches every target and never
   overshoots;
5. every bilabial closure gets ``jaw_open == 0`` on the frame nearest its middle, however short;
6. frames before the first phoneme or after the last are all zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import PchipInterpolator

from ..audio import FPS
from ..audio.phoneset import (  # noqa: F401
    _ARRAYS,
    CLOSURE_AFTER,
    CLOSURE_BEFORE,
    FALLBACK_CONSONANT,
    FALLBACK_VOWEL,
    PHONEMES,
    TARGETS,
    TRANSPARENT,
    VOWELS,
    classify,
    is_pause,
    known,
)
from ..audio.tts import Phoneme
from ..motion import vector

MOUTH = ("jaw_open", "lip_width", "lip_round", "upper_lip", "lower_lip")
_COLUMNS = [vector.INDEX[name] for name in MOUTH]
_JAW, _WIDTH, _ROUND = 0, 1, 2

MIN_PAUSE = 0.06  # s; shorter pauses do not close the mouth
EASE_OUT = 0.12  # s from the end of speech to rest
EASE_IN = 0.10  # s before speech resumes that the mouth starts to move
CLOSURE_LEAD = 0.05  # s a voiceless stop's closure may start before its event
VOICED_CLOSURE = 0.8  # fraction of a voiced stop's interval spent closed
ANTICIPATION = 0.10  # s lip rounding starts before a rounded target's span
ROUNDED = 0.3  # lip_round from which a target is anticipated
LONG_VOWEL = 0.12  # s; a vowel this long holds its target ...
HOLD = (0.3, 0.7)  # ... from 30 % to 70 % of its span


def targets(phonemes: Sequence[Phoneme], n_frames: int, fps: int = FPS) -> np.ndarray:
    """``(n_frames, vector.DIM)`` float32 targets, mouth channels only, from phonemes in seconds."""
    out = vector.neutral(n_frames)
    spoken = [p for p in phonemes if p.end > p.start]
    if n_frames == 0 or not spoken:
        return out
    times = (np.arange(n_frames) + 0.5) / fps
    plan = _plan(spoken)
    mouth = _interpolate(plan.keys, times)
    for start, end in plan.closures:
        mouth[int(np.clip(round((start + end) / 2 * fps - 0.5), 0, n_frames - 1)), _JAW] = 0.0
    mouth[(times < spoken[0].start) | (times >= spoken[-1].end)] = 0.0
    out[:, _COLUMNS] = mouth
    return vector.clip(out)


@dataclass
class _Plan:
    keys: list[tuple[float, np.ndarray]] = field(default_factory=list)  # (time, 5 values, NaN = unspecified)
    closures: list[tuple[float, float]] = field(default_factory=list)  # bilabial closed spans


def _spans(spoken: list[Phoneme]) -> list[list[float]]:
    """Articulatory ``[start, end]`` of each phoneme (step 1 of the module docstring)."""
    spans = [[p.start, p.end] for p in spoken]
    for i, p in enumerate(spoken):
        length = p.end - p.start
        if p.symbol in CLOSURE_BEFORE and i > 0:
            prev = spans[i - 1]
            lead = min(CLOSURE_LEAD, 0.5 * (prev[1] - prev[0]))
            prev[1] -= lead
            spans[i] = [p.start - lead, p.start + 0.2 * length]
        elif p.symbol in CLOSURE_AFTER:
            spans[i] = [p.start, p.start + VOICED_CLOSURE * length]
    return spans


def _key_times(names: tuple[str, ...], a: float, b: float) -> list[float]:
    """Where a phoneme's targets sit in its span ``[a, b]``: a bilabial is closed over all of it, a
    long vowel holds its target over the middle 40 %, otherwise the targets are spread evenly."""
    if names == ("p",):
        return [a, b]
    if len(names) == 1 and names[0] in VOWELS and b - a >= LONG_VOWEL:
        return [a + HOLD[0] * (b - a), a + HOLD[1] * (b - a)]
    return [a + (i + 0.5) / len(names) * (b - a) for i in range(len(names))]


def _plan(spoken: list[Phoneme]) -> _Plan:
    plan = _Plan()
    rest = _ARRAYS["rest"]
    plan.keys.append((spoken[0].start, rest))
    lips = (spoken[0].start, rest)  # the last key that sets lip_width and lip_round
    for p, (a, b) in zip(spoken, _spans(spoken), strict=True):
        names = classify(p.symbol)
        if names == ("rest",):
            length = b - a
            if length >= MIN_PAUSE:
                share = length * EASE_OUT / (EASE_OUT + EASE_IN)
                plan.keys += [(a + min(EASE_OUT, share), rest), (b - min(EASE_IN, length - share), rest)]
                lips = plan.keys[-1]
            continue
        if not names:
            continue
        times = _key_times(names, a, b)
        if names == ("p",):
            plan.closures.append((a, b))
        values = [_ARRAYS[name] for name in (names * len(times) if len(names) == 1 else names)]
        rounding = values[0][_ROUND]
        if rounding >= ROUNDED and rounding > lips[1][_ROUND] and a - ANTICIPATION > lips[0]:
            hold = np.full(len(MOUTH), np.nan)
            hold[[_WIDTH, _ROUND]] = lips[1][[_WIDTH, _ROUND]]
            plan.keys.append((a - ANTICIPATION, hold))
        plan.keys += list(zip(times, values, strict=True))
        if not np.isnan(values[-1][_ROUND]):
            lips = (times[-1], values[-1])
    plan.keys.append((spoken[-1].end, rest))
    return plan


def _interpolate(keys: list[tuple[float, np.ndarray]], times: np.ndarray) -> np.ndarray:
    """Per channel, PCHIP through the keys that set it (sorted, ties nudged apart), constant outside."""
    keys = sorted(keys, key=lambda k: k[0])
    t = np.array([k[0] for k in keys])
    for i in range(1, len(t)):
        t[i] = max(t[i], t[i - 1] + 1e-4)
    values = np.stack([k[1] for k in keys])
    out = np.empty((len(times), len(MOUTH)), np.float32)
    for c in range(len(MOUTH)):
        given = ~np.isnan(values[:, c])
        tc, vc = t[given], values[given, c]
        out[:, c] = PchipInterpolator(tc, vc, extrapolate=False)(np.clip(times, tc[0], tc[-1]))
    return out
