"""Measurements on face landmarks (of a photo, a video frame or a rendered frame).

Used by the tests, the lip-sync benchmark and the training data tracker, so that all three
measure a mouth the same way. Distances are in inter-ocular distances (IOD, iris centre to
iris centre), which makes them independent of image size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .audio import phoneset
from .face import landmarks as lm


def iod(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[lm.LEFT_IRIS_CENTER, :2] - points[lm.RIGHT_IRIS_CENTER, :2]))


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip gap at the centre over inter-ocular distance."""
    gap = np.linalg.norm(points[lm.LOWER_LIP_CENTER_INNER, :2] - points[lm.UPPER_LIP_CENTER_INNER, :2])
    return float(gap / iod(points))


def eye_aspect_ratio(points: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...]) -> float:
    """Mean lid-to-lid distance over eye width."""
    width = np.linalg.norm(points[upper[0], :2] - points[upper[-1], :2])
    gaps = [np.linalg.norm(points[u, :2] - points[d, :2]) for u, d in zip(upper[2:-2], lower[2:-2], strict=True)]
    return float(np.mean(gaps) / width)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 when either series is constant."""
    a = np.asarray(a, dtype=np.float64) - np.mean(a)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def best_lag(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The shift ``k`` (frames, |k| <= max_lag) maximising corr(a[t], b[t + k]), and that r.

    ``k > 0`` means ``b`` lags ``a`` (``b`` shows at ``t + k`` what ``a`` shows at ``t``).
    """
    best = (0, -2.0)
    n = min(len(a), len(b))
    for k in range(-max_lag, max_lag + 1):
        lo, hi = max(0, -k), min(n, n - k)
        if hi - lo < 10:
            continue
        r = pearson(a[lo:hi], b[lo + k : hi + k])
        if r > best[1]:
            best = (k, r)
    return best


# --- Visemes a lip-reader can see, on rendered frames ---------------------------------------------
#
# Three mouth shapes are told apart on a frame's landmarks, each against the landmarks of the same
# portrait at rest (``rest_points``: the frame a live session shows in silence, lips sealed, as
# ``sonic_rt.animator.rest_image`` renders it): sealed lips (/p b m/), the lower lip up at the upper
# teeth (/f v/) and rounded lips (/u w/). The thresholds were read off renders of single motion
# vectors of two portraits (sample:astronaut, whose photo shows an open smile, and a closed-mouth
# photo) at 256 and 512 px, each under 12 random small head poses (pitch +-2, yaw +-4, roll +-2
# degrees), measured by MediaPipe:
#
# - the inner-lip gap of the sealed rest frame is not zero and depends on the portrait: 0.01 IOD for
#   the astronaut, 0.03-0.04 IOD for a photo whose own lip line the seal leaves as a dark crease, so
#   gaps are measured over the rest frame's. Over it, rest frames jitter by +-0.01 (at most +0.025),
#   the /f/ target (jaw 0.04, upper lip +0.15, lower lip -0.3) opens 0.01-0.04, /s/ 0.02-0.04, /t/
#   0.04-0.05, /i/ 0.05-0.07, rounded /u/ 0.09-0.15 and open /a/ 0.12-0.13;
# - mouth width over the rest frame's jitters by +-0.01 (0.985-1.033); /u/ is 0.50-0.76, half
#   rounding (lip_round 0.45) 0.75-0.86, spread /i/ 1.10-1.14;
# - the lower lip drops from its rest height (measured from the nose, see ``lower_lip_raise``) by
#   0.01 for /f/, 0.015-0.022 for /s/, 0.023-0.029 for /t/, 0.02-0.04 for /i/, 0.08 for /u/. A head
#   pitch of 5 degrees moves it by up to 0.05, so this measure only holds for a head near its pose.
#
# What it means: the renderer draws /f/ as a mouth all but closed (the /f/ target's jaw of 0.04 is an
# absolute gap of 0.018 IOD, 1 px at 256 px; its lower-lip raise moves the lip by 0.012 IOD), so on
# landmarks /f/ differs from sealed lips by less than a rest frame's jitter. ``lip_to_teeth``
# therefore asks for the lower lip up against the upper lip or teeth (not dropped, the mouth not
# open): it separates /f/ from open vowels and from a dropped jaw, not from /p b m/ or from /s/.
# And a closure next to a rounded vowel (lip_round 0.2-0.6 carried through the /b/ of "blue boat")
# renders parted by 0.02-0.07 IOD over the rest gap: the renderer's rounding parts the inner lips
# (``sonic_rt.render.blendshapes``), which a sealed mouth_close does not undo; ``lips_closed`` says so.

SUBNASALE = 2  # MediaPipe point under the nose: no mouth channel moves it
LOWER_LIP_CENTER_OUTER = 17
CLOSED_GAP = 0.03  # IOD over the rest gap: lips closed (rest frames reach +0.025, /t/ starts at +0.023)
TEETH_GAP = 0.05  # IOD over the rest gap: at most parted by a sliver (/f/, /s/), not open (/i/, /a/)
TEETH_DROP = 0.02  # IOD: the lower lip at most this far under its rest height (/f/ 0.01, /t/ 0.025)
ROUNDED_WIDTH = 0.90  # mouth width at most this share of the rest width (rest jitters by 0.01-0.03)


def mouth_width(points: np.ndarray) -> float:
    """Outer lip corner to corner (MediaPipe 61 to 291) over inter-ocular distance."""
    left, right = lm.MOUTH_CORNERS
    return float(np.linalg.norm(points[left, :2] - points[right, :2]) / iod(points))


def gap_over_rest(points: np.ndarray, rest_points: np.ndarray | None = None) -> float:
    """``mouth_opening`` minus that of the portrait at rest (IOD); the plain opening without a rest."""
    return mouth_opening(points) - (mouth_opening(rest_points) if rest_points is not None else 0.0)


def _below_nose(points: np.ndarray, index: int) -> float:
    """How far point ``index`` lies below the subnasale along the face's vertical, in IOD (the
    vertical is perpendicular to the iris line, so head roll does not count)."""
    across = points[lm.LEFT_IRIS_CENTER, :2] - points[lm.RIGHT_IRIS_CENTER, :2]
    d = float(np.linalg.norm(across))
    down = np.array([-across[1], across[0]]) / d
    return float((points[index, :2] - points[SUBNASALE, :2]) @ down / d)


def lower_lip_raise(points: np.ndarray, rest_points: np.ndarray) -> float:
    """How far the lower lip sits *above* its height in the portrait at rest, in IOD (negative:
    lowered). The lower lip is the mean of its inner (14) and outer (17) centre points, its height
    is measured from the subnasale (2), which no mouth channel moves, so a translated or rolled head
    reads the same; a pitched head does not (5 degrees shift it by up to 0.05).

    At rest the lips are sealed, so the lower lip cannot rise much further: on renders 0 at rest,
    -0.01 for /f/ (the jaw of the /f/ target lowers it more than its lower-lip raise lifts it),
    -0.02 for /s/, -0.025 for /t/, -0.02 to -0.04 for /i/ and about -0.08 or lower for /u/ and /a/."""
    now = _below_nose(points, lm.LOWER_LIP_CENTER_INNER) + _below_nose(points, LOWER_LIP_CENTER_OUTER)
    rest = _below_nose(rest_points, lm.LOWER_LIP_CENTER_INNER) + _below_nose(rest_points, LOWER_LIP_CENTER_OUTER)
    return float(rest - now) / 2


def lips_closed(points: np.ndarray, rest_points: np.ndarray | None = None) -> bool:
    """Lips sealed: the inner-lip gap less than ``CLOSED_GAP`` (0.03 IOD, about 2 mm) over the rest
    frame's (without ``rest_points``: over none). On renders every rest frame passes and jaw_open
    up to 0.04 (an absolute gap of 0.018 IOD) does; /t/ (jaw 0.08) and every vowel do not."""
    return gap_over_rest(points, rest_points) < CLOSED_GAP


def lip_to_teeth(points: np.ndarray, rest_points: np.ndarray) -> bool:
    """The lower lip up at the upper teeth (/f v/): the lips at most parted by a sliver (``TEETH_GAP``:
    0.05 IOD over the rest gap) while the lower lip stays within ``TEETH_DROP`` (0.02 IOD) of its rest
    height, so that whatever gap there is comes from the upper lip, not a dropped jaw. Renders of the
    /f/ target pass (gap 0.01-0.04, lower lip 0.01 down), as do sealed lips and, about half the time,
    /s/ (drawn the same way); /t/ (lower lip 0.025 down) and open or rounded vowels fail, /i/ mostly
    (on a closed-mouth portrait at 512 px its gap of 0.045-0.05 sits at the edge)."""
    return gap_over_rest(points, rest_points) <= TEETH_GAP and lower_lip_raise(points, rest_points) >= -TEETH_DROP


def lips_rounded(points: np.ndarray, rest_points: np.ndarray) -> bool:
    """Lips rounded: the mouth at least 10 % narrower than at rest (``ROUNDED_WIDTH``). Renders of
    /u w/ are 25-50 % narrower, half rounding 15-25 %; rest frames jitter by 1-3 %, /i/ is wider."""
    return mouth_width(points) <= ROUNDED_WIDTH * mouth_width(rest_points)


# --- Scoring the phones of known speech on its frames ----------------------------------------------

WINDOW_BEFORE = 0.05  # s: espeak times a voiceless stop at its burst, its closure is the 50 ms before
WINDOW_AFTER = 0.04  # s: the mouth may trail the sound by a frame
OPEN_VOWELS = frozenset(["ɛ", "æ", "a", "ɑ", "ʌ", "ɒ", "ɔ"])  # jaw target 0.27-0.44
SPREAD_VOWELS = frozenset(["i", "ɪ", "e", "ɛ"])  # lip width target 0.3-0.5
_LIP_CONTACT = frozenset(["p", "β", "f", "rest"])  # classes that close or nearly close the lips
_ROUNDING = frozenset(name for name, t in phoneset.TARGETS.items() if t[2] is not None and t[2] >= 0.3)


@dataclass(frozen=True)
class Viseme:
    """A mouth shape to look for: at the phones of ``classes`` (``sonic_rt.audio.phoneset`` classes) the
    frame should pass ``test(points, rest_points)``. Its baseline: the same test at the phones of
    ``controls`` (which should fail it) whose window overlaps no phone of ``exclude``, so that a
    test that says yes to anything shows."""

    name: str
    classes: frozenset[str]
    test: Callable[[np.ndarray, np.ndarray], bool]
    controls: frozenset[str]
    exclude: frozenset[str]


VISEMES: tuple[Viseme, ...] = (
    Viseme("closed", frozenset(["p"]), lips_closed, OPEN_VOWELS, _LIP_CONTACT),
    Viseme("teeth", frozenset(["f"]), lip_to_teeth, OPEN_VOWELS, _LIP_CONTACT),
    Viseme("rounded", frozenset(["u", "w"]), lips_rounded, SPREAD_VOWELS, _ROUNDING),
)


@dataclass(frozen=True)
class Span:
    """One viseme class spoken over ``[start, end)`` s: a phoneme, a part of a diphthong (its
    classes split its interval evenly) or a run of phonemes of one class (the /m m/ of "Mum moved")."""

    name: str
    symbols: str
    start: float
    end: float


def class_spans(phonemes: Sequence) -> list[Span]:
    """The class spans of espeak phonemes (``tts.Phoneme``: ``symbol``, ``start``, ``end`` in s)."""
    out: list[Span] = []
    for p in phonemes:
        if p.end <= p.start:
            continue
        classes = phoneset.espeak_classes(p.symbol)
        step = (p.end - p.start) / len(classes)
        for j, name in enumerate(classes):
            start, end = p.start + j * step, p.start + (j + 1) * step
            last = out[-1] if out else None
            if last is not None and last.name == name and abs(last.end - start) < 1e-6:
                out[-1] = Span(name, last.symbols if j else f"{last.symbols} {p.symbol}", last.start, end)
            else:
                out.append(Span(name, p.symbol, start, end))
    return out


def window_frames(span: Span, n_frames: int, fps: float, shift: float = 0.0) -> list[int]:
    """Frames whose centre lies in ``[start - WINDOW_BEFORE, end + WINDOW_AFTER]``, moved ``shift`` s later."""
    first = int(np.ceil((span.start - WINDOW_BEFORE + shift) * fps - 0.5))
    last = int(np.floor((span.end + WINDOW_AFTER + shift) * fps - 0.5))
    return list(range(max(first, 0), min(last, n_frames - 1) + 1))


@dataclass(frozen=True)
class Occurrence:
    """One phone scored on the frames of its window: ``hit`` when any measured frame passes the
    viseme's test (``frame``: the first that does). ``control``: a baseline phone, not a target."""

    viseme: str
    span: Span
    control: bool
    frames: tuple[int, ...]
    hit: bool
    frame: int | None


def score_visemes(
    phonemes: Sequence, points: Sequence[np.ndarray | None], rest_points: np.ndarray, fps: float, shift: float = 0.0
) -> list[Occurrence]:
    """Every target and control phone of ``phonemes`` scored on ``points`` (per frame: landmarks of
    the rendered frame ``n`` covering ``[n / fps, (n + 1) / fps)``, None where no face was found).
    A phone whose window has no measured frame is left out. ``shift``: windows moved this many
    seconds later (to find the lag at which a mouth shows its shapes best)."""
    spans = class_spans(phonemes)
    out = []
    for viseme in VISEMES:
        blocked = [(s.start + shift, s.end + shift) for s in spans if s.name in viseme.exclude]
        for span in spans:
            control = span.name in viseme.controls
            if span.name not in viseme.classes and not control:
                continue
            frames = [k for k in window_frames(span, len(points), fps, shift) if points[k] is not None]
            if not frames:
                continue
            if control:
                a, b = frames[0] / fps, (frames[-1] + 1) / fps
                if any(lo < b and a < hi for lo, hi in blocked):
                    continue
            passing = [k for k in frames if viseme.test(points[k], rest_points)]
            out.append(
                Occurrence(viseme.name, span, control, tuple(frames), bool(passing), passing[0] if passing else None)
            )
    return out


def viseme_shares(occurrences: Sequence[Occurrence]) -> dict[str, dict[str, tuple[int, int]]]:
    """``{viseme: {"target": (hits, n), "control": (hits, n)}}`` over ``occurrences``."""
    out = {}
    for viseme in VISEMES:
        row = {}
        for kind, control in (("target", False), ("control", True)):
            picked = [o for o in occurrences if o.viseme == viseme.name and o.control == control]
            row[kind] = (sum(o.hit for o in picked), len(picked))
        out[viseme.name] = row
    return out
