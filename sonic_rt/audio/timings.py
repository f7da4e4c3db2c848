"""Phoneme and viseme timings sent by a client's own text-to-speech, read into the phonetic track.

TTS engines often know which phoneme is spoken when, and send it with the audio. ``parse`` reads
one list of them, in one of these vocabularies, into ``Mark``s (a viseme class sequence of
``sonic_rt.audio.phoneset`` over ``[start, end)`` seconds):

- ``"ipa"``: ``{"phone": "p", "start_ms": 0, "end_ms": 80}`` (stress, length and tie marks are
  ignored; a diphthong such as ``"aɪ"`` spreads over its interval);
- ``"arpabet"``: the same, CMU/ARPAbet phones (``"AH0"``; stress digits ignored; ``sil``, ``sp``,
  ``pau`` are pauses; festival's lower-case radio phones read the same);
- ``"espeak"``: the same, espeak-ng phoneme mnemonics (what ``espeak-ng -x`` and its event API give);
- ``"polly"``: Amazon Polly speech marks as Polly writes them, ``{"time": 125, "type": "viseme",
  "value": "k"}`` (marks of other types, words and sentences, are skipped);
- ``"azure"``: Azure Speech viseme events, ``{"audio_offset": 1250000, "viseme_id": 20}``
  (``audio_offset`` in 100 ns ticks; the JavaScript SDK's ``audioOffset``/``visemeId`` also read).

A mark without an end (Polly and Azure never give one) lasts until the next mark starts; the last
one until ``end`` when given, else it stays open (``Mark.end`` is ``inf``) until the audio it
describes ends. Times count from ``offset`` seconds. Marks must be in order and must not overlap:
timings that go backwards or overlap are refused (``BadTimings``), as are unknown symbols.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import SonicError
from . import phoneset

FORMATS = ("ipa", "arpabet", "espeak", "polly", "azure")
MAX_MARKS = 10_000
AZURE_TICKS_PER_S = 10_000_000
OPEN = math.inf


class BadTimings(SonicError):
    """Timings that cannot be read, or that contradict themselves or the audio."""

    code = "bad_timings"


@dataclass(frozen=True, slots=True)
class Mark:
    """A mouth shape (a sequence of viseme classes, spread evenly) over ``[start, end)`` seconds.
    ``closure``: a voiceless stop timed at its burst, whose closure comes first (espeak's)."""

    classes: tuple[str, ...]
    start: float
    end: float
    closure: bool = False


# -- vocabularies --------------------------------------------------------------------------------

# IPA segments -> classes; the longest segment matches first ("tʃ" before "t")
_IPA: dict[str, tuple[str, ...]] = phoneset._table(
    """
    p b m ɱ = p
    ɸ β = β
    f v = f
    θ ð = θ
    t d n ɾ ɗ ʈ ɖ ɳ = t
    s z ts dz = s
    l ɫ ɬ ɮ ɭ = l
    ʃ ʒ tʃ dʒ = ʃ
    ʂ ʐ tʂ dʐ = ʂ
    ɕ ʑ tɕ dʑ = ɕ
    ɹ r ɻ ʀ = ɹ
    j ʎ ɲ c ɟ ç ʝ = j
    w ʍ ɥ = w
    k g ɡ ŋ x ɣ q ɢ χ ʁ ɴ = k
    h ɦ ʔ ħ ʕ = h
    i = i
    ɪ ɨ ɯ = ɪ
    e = e
    ɛ = ɛ
    æ = æ
    a ɶ = a
    ɑ = ɑ
    ʌ ɐ = ʌ
    ə ɘ = ə
    ɜ ɞ = ɜ
    ɚ ɝ = ɚ
    ɒ = ɒ
    ɔ œ = ɔ
    o ø ɵ = o
    ʊ = ʊ
    u ʉ = u
    y ʏ = y
    ɤ = ɤ
    """
)
_IPA_IGNORED = set("ˈˌːˑ̩̯͡‿ʰʷʲˠˤ̃̚.ʼ̥̬")
_IPA_LONGEST = max(len(s) for s in _IPA)

_ARPABET_EXTRA: dict[str, tuple[str, ...]] = phoneset._table(
    """
    SP SPN PAU H# BRTH = rest
    AX = ə
    AXR = ɚ
    IX = ɪ
    UX = u
    DX NX = t
    EL = ə l
    EM = ə p
    EN = ə t
    Q = h
    WH = w
    """
)

# Amazon Polly's viseme set (its phoneme/viseme tables) -> the class each stands for
_POLLY: dict[str, tuple[str, ...]] = {
    "sil": ("rest",), "p": ("p",), "t": ("t",), "S": ("ʃ",), "T": ("θ",), "f": ("f",), "k": ("k",),
    "i": ("i",), "r": ("ɹ",), "s": ("s",), "u": ("u",), "@": ("ə",), "a": ("a",), "e": ("e",),
    "E": ("ɛ",), "o": ("o",), "O": ("ɔ",), "l": ("l",),
}  # fmt: skip
# Azure Speech viseme IDs 0-21 (the SAPI/Disney set, en-US examples in comments)
_AZURE: tuple[tuple[str, ...], ...] = (
    ("rest",),  # 0 silence
    ("ʌ",),  # 1 æ ə ʌ
    ("ɑ",),  # 2 ɑ
    ("ɔ",),  # 3 ɔ
    ("ɛ",),  # 4 eɪ ɛ ʊ
    ("ɚ",),  # 5 ɝ
    ("i",),  # 6 j i ɪ
    ("u",),  # 7 w u
    ("o",),  # 8 oʊ
    ("a", "ʊ"),  # 9 aʊ
    ("ɔ", "ɪ"),  # 10 ɔɪ
    ("a", "ɪ"),  # 11 aɪ
    ("h",),  # 12 h
    ("ɹ",),  # 13 ɹ
    ("l",),  # 14 l
    ("s",),  # 15 s z
    ("ʃ",),  # 16 ʃ tʃ dʒ ʒ
    ("θ",),  # 17 ð θ
    ("f",),  # 18 f v
    ("t",),  # 19 d t n
    ("k",),  # 20 k g ŋ
    ("p",),  # 21 p b m
)


def _class(name: str) -> str:
    return phoneset.TRANSPARENT_CLASS if name == "h" else name


def ipa_classes(phone: str) -> tuple[str, ...]:
    """Classes of one IPA phone (or a diphthong, an affricate); raises ``BadTimings`` for a symbol
    that is not IPA this table knows."""
    text = "".join(c for c in phone.strip() if c not in _IPA_IGNORED)
    if not text:
        return ("rest",)
    out, i = [], 0
    while i < len(text):
        for n in range(min(_IPA_LONGEST, len(text) - i), 0, -1):
            names = _IPA.get(text[i : i + n])
            if names is not None:
                out.extend(names)
                i += n
                break
        else:
            raise BadTimings(f"unknown IPA symbol {text[i]!r} in {phone!r}")
    return tuple(_class(c) for c in out)


def arpabet_classes(phone: str) -> tuple[str, ...]:
    """Classes of one ARPAbet phone (CMU, stress digits and case ignored)."""
    key = phone.strip().upper().rstrip("012")
    if key in ("", "SIL"):
        return ("rest",)
    names = _ARPABET_EXTRA.get(key) or phoneset.CMU.get(key)
    if names is None:
        raise BadTimings(f"unknown ARPAbet phone {phone!r}")
    return tuple(_class(c) for c in names)


def espeak_classes(phone: str) -> tuple[str, ...]:
    """Classes of one espeak-ng mnemonic."""
    if not phoneset.known(phone):
        raise BadTimings(f"unknown espeak phoneme {phone!r}")
    return phoneset.espeak_classes(phone)


# -- parsing -------------------------------------------------------------------------------------


def parse(fmt: str, marks: Sequence[dict], offset: float = 0.0, end: float | None = None) -> tuple[Mark, ...]:
    """One list of timings in vocabulary ``fmt`` -> ``Mark``s on seconds from ``offset``; ``end``
    (seconds, same origin as the marks) ends a last mark that has no end of its own."""
    if fmt not in FORMATS:
        raise BadTimings(f"unknown timings format {fmt!r}; known: {', '.join(FORMATS)}")
    if not isinstance(marks, list | tuple):
        raise BadTimings("timings are a list of marks")
    if len(marks) > MAX_MARKS:
        raise BadTimings(f"at most {MAX_MARKS} marks at a time")
    timed = [m for m in (_read(fmt, i, mark) for i, mark in enumerate(marks)) if m is not None]
    out = []
    for i, (classes, start, stop, closure) in enumerate(timed):
        following = timed[i + 1][1] if i + 1 < len(timed) else None
        if following is not None and following < start:
            raise BadTimings(
                f"the timings go backwards: mark {i + 1} starts at {following * 1e3:g} ms, before mark {i} "
                f"({start * 1e3:g} ms)"
            )
        if stop is None:
            stop = following if following is not None else (OPEN if end is None else float(end))
        if stop <= start:
            raise BadTimings(f"mark {i} ends ({stop * 1e3:g} ms) before it starts ({start * 1e3:g} ms)")
        if following is not None and following < stop - 1e-9:
            raise BadTimings(
                f"mark {i + 1} starts at {following * 1e3:g} ms, before mark {i} ends ({stop * 1e3:g} ms): "
                "timings must be in order and must not overlap"
            )
        out.append(Mark(classes, offset + start, offset + stop, closure))
    return tuple(out)


def _read(fmt: str, i: int, mark) -> tuple[tuple[str, ...], float, float | None, bool] | None:
    """One mark -> (classes, start s, end s or None, closure), or None for a mark to skip."""
    if not isinstance(mark, dict):
        raise BadTimings(f"mark {i} is not an object")
    try:
        if fmt == "polly":
            if mark.get("type") != "viseme":
                return None  # word, sentence and ssml marks
            value = mark["value"]
            if value not in _POLLY:
                raise BadTimings(f"mark {i}: unknown Polly viseme {value!r}; known: {' '.join(_POLLY)}")
            return _POLLY[value], _seconds(mark["time"], 1e-3, i), None, False
        if fmt == "azure":
            vid = mark["viseme_id"] if "viseme_id" in mark else mark["visemeId"]
            ticks = mark["audio_offset"] if "audio_offset" in mark else mark["audioOffset"]
            if isinstance(vid, bool) or not isinstance(vid, int) or not 0 <= vid < len(_AZURE):
                raise BadTimings(f"mark {i}: an Azure viseme id is an integer 0-{len(_AZURE) - 1}, not {vid!r}")
            return tuple(_class(c) for c in _AZURE[vid]), _seconds(ticks, 1 / AZURE_TICKS_PER_S, i), None, False
        phone = mark["phone"]
        if not isinstance(phone, str):
            raise BadTimings(f"mark {i}: phone must be a string")
        start = _seconds(mark["start_ms"], 1e-3, i)
        end = None if mark.get("end_ms") is None else _seconds(mark["end_ms"], 1e-3, i)
    except KeyError as err:
        raise BadTimings(f"mark {i} has no {err.args[0]!r}") from None
    reader = {"ipa": ipa_classes, "arpabet": arpabet_classes, "espeak": espeak_classes}[fmt]
    try:
        classes = reader(phone)
    except BadTimings as err:
        raise BadTimings(f"mark {i}: {err}") from None
    return classes, start, end, fmt == "espeak" and phone in phoneset.CLOSURE_BEFORE


def _seconds(value, unit: float, i: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise BadTimings(f"mark {i}: a time is a number >= 0, not {value!r}")
    return float(value) * unit


def load(path: str | Path) -> tuple[Mark, ...]:
    """Timings from a JSON file: ``{"format": ..., "marks": [...], "offset_ms": 0, "end_ms": null}``,
    or Polly's own speech-marks output (one JSON object per line)."""
    text = Path(path).read_text(encoding="utf-8")
    return loads(text)


def loads(text: str) -> tuple[Mark, ...]:
    """``load`` from the file's text."""
    try:
        data = json.loads(text)
    except ValueError:
        try:  # Polly writes JSON lines
            data = {"format": "polly", "marks": [json.loads(line) for line in text.splitlines() if line.strip()]}
        except ValueError as err:
            raise BadTimings(f"timings are not JSON (nor Polly's JSON lines): {err}") from None
    if isinstance(data, dict) and "time" in data and "type" in data:  # a single Polly line
        data = {"format": "polly", "marks": [data]}
    if not isinstance(data, dict) or "marks" not in data or "format" not in data:
        raise BadTimings('a timings file is an object with "format" and "marks"')
    offset, end = data.get("offset_ms") or 0.0, data.get("end_ms")
    if not isinstance(offset, int | float) or (end is not None and not isinstance(end, int | float)):
        raise BadTimings("offset_ms and end_ms are numbers")
    return parse(data["format"], data["marks"], offset / 1e3, None if end is None else end / 1e3)


# -- on a timeline -------------------------------------------------------------------------------


def covered(marks: Sequence[Mark], start: float, end: float) -> list[tuple[float, float, bool]]:
    """``[start, end)`` seconds cut where ``marks`` begin and stop covering it: ``(lo, hi, covered)``
    pieces in order. A gap between two marks is covered (a pause inside the timings); time before
    the first mark or after the last is not."""
    if not marks or end <= start:
        return [(start, end, False)] if end > start else []
    lo, hi = marks[0].start, marks[-1].end
    out = []
    pieces = ((start, min(end, lo), False), (max(start, lo), min(end, hi), True), (max(start, hi), end, False))
    for a, b, inside in pieces:
        if b > a:
            out.append((a, b, inside))
    return out


def relative(marks: Iterable[Mark], start: float, end: float | None = None) -> tuple[Mark, ...]:
    """The marks that touch ``[start, end)``, their times counted from ``start``."""
    return tuple(
        dataclasses.replace(m, start=m.start - start, end=m.end - start)
        for m in marks
        if m.end > start and (end is None or m.start < end)
    )
