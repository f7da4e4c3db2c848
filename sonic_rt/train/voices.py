"""English training speech from voices built from human recordings (festival and flite), as ``tts.Speech``.

``synthesize(text, voice)`` runs the voice's program in a subprocess and returns the same type as
the espeak-ng wrapper ``sonic_rt.audio.tts``: 16 kHz mono float32 audio and the phonemes spoken, with
espeak-ng mnemonics as symbols (``PHONES`` maps the voices' phones), so ``visemes.targets`` works on
them unchanged. ``words`` is empty. Voices (``VOICES``; ``available()`` lists those that work here):

- ``festival:us_slt_hts`` (Debian ``festvox-us-slt-hts``: CMU ARCTIC "slt", female, HTS statistical
  parametric), ``festival:kal_diphone`` and ``festival:ked_diphone`` (``festvox-kallpc16k``,
  ``festvox-kdlpc16k``: male US diphone voices, residual-excited LPC). Festival 2.5 runs a Scheme
  script (``festival --batch``) that selects the voice, synthesises the text as one utterance and
  saves the wave and the ``Segment`` relation (``utt.save.segs``: a header ending in a ``#`` line,
  then ``end_time colour phone`` per phone). The HTS voice's segment times are the ones its engine
  generated the frames from (multiples of its 5 ms frame shift), the diphone voices' are the
  duration model's, which the concatenation follows.
- ``flite:slt``, ``flite:awb``, ``flite:rms`` (clustergen, 16 kHz) and ``flite:kal`` (diphone, 8 kHz:
  nothing above 4 kHz after resampling), all in Debian ``flite``. Flite 2.2's ``-psdur`` prints
  ``phone:end_time`` for every segment on stdout. The text goes in with ``-t``, which makes it one
  utterance on one timeline; with ``-f`` flite splits a file into sentences and prints each on its
  own line timed from 0 while the audio is their concatenation (and kal's audio is cut short of its
  last segment's end, so summing offsets would drift). Checked on four sentences: the last end
  matches the audio's duration within 5 ms for the clustergen voices (kal's final pause is cut
  about 0.12 s short, which the clamp below absorbs), and every pause longer than 0.1 s is 30-50 dB
  quieter than the speech on either side. An unknown ``-voice`` silently falls back to kal, so the
  voice is checked against ``flite -lv``.

All voices use the same 45-phone US English set (festival's "radio" phone set, flite's
``us_phoneset``: CMU dictionary phones plus ``pau``, ``h#``, ``brth``). Phone ``i`` starts where
phone ``i - 1`` ends (the first at 0); zero-length phones are dropped, ends past the audio are
clamped to it and the last phoneme ends at the audio's end, so the phonemes tile ``[0, duration)``.
The times are the programs' own, unchanged.

One difference from espeak is mended: festival and flite start a voiceless stop (``p t k tS``)
at its closure (the energy drops about 20 dB at the segment's start; the burst follows 35-55 ms
later, median per voice), while espeak starts it at the burst, which is what ``visemes``
(``CLOSURE_BEFORE``: the mouth closes up to 50 ms before the phoneme's start) expects. So each
voiceless stop's start is moved to its burst, found in the audio (``_burst``: the first 5 ms
frame after the closure's quietest that is 12 dB louder than it), the silent closure going to the
phoneme before, as espeak does; a stop with no burst found keeps its time. Voiced stops
(``CLOSURE_AFTER``) match as they are: both mark their closure.

``stretch`` scales durations (1.3 = 30 % slower): festival's ``Duration_Stretch`` for the diphone
voices, the HTS engine's speech rate ``-r 1/stretch`` for slt (it ignores ``Duration_Stretch``),
flite's ``duration_stretch`` feature.

Cost per sentence ("Peter picked a peck of pickled peppers.", 2.3-2.7 s of audio), wall time with
process start and decoding, median of 5 on a 2-core machine busy with training:
festival:us_slt_hts about 300 ms, festival:kal_diphone about 240 ms, festival:ked_diphone about
180 ms (festival's start-up is most of it), flite:slt, flite:awb, flite:rms about 45-55 ms,
flite:kal about 20 ms.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..audio.decode import decode_audio
from ..audio.tts import Phoneme, Speech
from ..errors import BadSpeechParameter, EmptyText, SonicError, TTSUnavailable, UnknownVoice


@dataclass(frozen=True, slots=True)
class _Voice:
    program: str  # "festival" or "flite"
    name: str  # festival: the voice's (voice_NAME) function; flite: its -voice name
    package: str  # the Debian package that provides it


_VOICES: dict[str, _Voice] = {
    "festival:us_slt_hts": _Voice("festival", "cmu_us_slt_arctic_hts", "festvox-us-slt-hts"),
    "festival:kal_diphone": _Voice("festival", "kal_diphone", "festvox-kallpc16k"),
    "festival:ked_diphone": _Voice("festival", "ked_diphone", "festvox-kdlpc16k"),
    "flite:slt": _Voice("flite", "slt", "flite"),
    "flite:awb": _Voice("flite", "awb", "flite"),
    "flite:rms": _Voice("flite", "rms", "flite"),
    "flite:kal": _Voice("flite", "kal", "flite"),
}
VOICES: tuple[str, ...] = tuple(_VOICES)
STRETCH_RANGE = (0.8, 1.3)
MIN_PHONEME = 5e-4  # s; shorter phones (zero-length ones, printed to 1 ms or 0.1 ms) are dropped
TAIL_SLACK = 0.05  # s; audio past the last phone's end up to this much is given to that phone
TIMEOUT = 120  # s per synthesis

# Festival "radio" / flite us_phoneset phone -> espeak-ng en-us mnemonic (visemes.PHONEMES). Stops
# keep their own symbols so visemes.CLOSURE_BEFORE (p t k tS) and CLOSURE_AFTER (b d g dZ) apply;
# festival and flite time a stop from its closure, as visemes expects of the voiced ones.
PHONES: dict[str, str] = {
    # vowels
    "aa": "A:",  # father, lot (en-us espeak says "0" for lot: a little less open, same class)
    "ae": "a",
    "ah": "V",
    "ao": "O:",
    "aw": "aU",
    "ax": "@",
    "axr": "3",  # unstressed r-coloured schwa, espeak en-us "3" (butter)
    "ay": "aI",
    "eh": "E",
    "er": "3:",
    "ey": "eI",
    "ih": "I",
    "iy": "i:",
    "ow": "oU",
    "oy": "OI",
    "uh": "U",
    "uw": "u:",
    # syllabic consonants
    "el": "@L",
    "em": "m",
    "en": "n",
    # consonants
    "b": "b",
    "ch": "tS",
    "d": "d",
    "dh": "D",
    "dx": "t",  # the flap of "butter"; espeak en-us says "t#", which visemes treats as "t"
    "f": "f",
    "g": "g",
    "hh": "h",
    "hv": "h",
    "jh": "dZ",
    "k": "k",
    "l": "l",
    "m": "m",
    "n": "n",
    "ng": "N",
    "nx": "n",
    "p": "p",
    "r": "r",
    "s": "s",
    "sh": "S",
    "t": "t",
    "th": "T",
    "v": "v",
    "w": "w",
    "y": "j",
    "z": "z",
    "zh": "Z",
    # silence
    "pau": "_",
    "h#": "_",
    "brth": "_",  # a breath: the mouth rests
}

_AVAILABLE: tuple[str, ...] | None = None
_PROBE_LOCK = threading.Lock()
_FLITE_VOICES: frozenset[str] | None = None
_FLITE_TOKEN = re.compile(r"(\S+):(\d+(?:\.\d*)?)")


def synthesize(text: str, voice: str = "festival:us_slt_hts", stretch: float = 1.0) -> Speech:
    """Speak English ``text`` in ``voice`` (one of ``VOICES``), durations scaled by ``stretch``.

    Non-ASCII letters are reduced to ASCII (``café`` -> ``cafe``) and dropped where they have none.
    Raises ``EmptyText``, ``UnknownVoice``, ``BadSpeechParameter`` or ``TTSUnavailable`` (the program
    or voice is not installed; the message names the Debian package).
    """
    clean = _clean(text)
    if not clean.strip():
        raise EmptyText("nothing to say: the text is empty" if not text.strip() else "no English letters to say")
    spec = _VOICES.get(voice)
    if spec is None:
        raise UnknownVoice(f"unknown voice {voice!r}; one of {', '.join(VOICES)}")
    low, high = STRETCH_RANGE
    if not low <= stretch <= high:
        raise BadSpeechParameter(f"stretch must be in {low}..{high}, got {stretch}")
    if shutil.which(spec.program) is None:
        raise TTSUnavailable(f"{spec.program} is not installed (apt-get install {spec.package})")
    with tempfile.TemporaryDirectory(prefix="sonic-rt-voice-") as folder:
        tmp = Path(folder)
        run = _festival if spec.program == "festival" else _flite
        marks = run(spec, voice, clean, stretch, tmp)
        audio = decode_audio(tmp / "speech.wav")
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32, copy=False)
    phonemes = _at_bursts(_timeline(marks, len(audio) / SAMPLE_RATE, voice), audio)
    return Speech(audio=audio, sample_rate=SAMPLE_RATE, phonemes=phonemes, words=())


def available() -> tuple[str, ...]:
    """The voices of ``VOICES`` that synthesise on this machine (probed once, in parallel, then cached)."""
    global _AVAILABLE
    with _PROBE_LOCK:
        if _AVAILABLE is None:
            with ThreadPoolExecutor(max_workers=4) as pool:
                works = list(pool.map(_works, VOICES))
            _AVAILABLE = tuple(v for v, ok in zip(VOICES, works, strict=True) if ok)
    return _AVAILABLE


def _works(voice: str) -> bool:
    try:
        speech = synthesize("Hi.", voice)
    except (SonicError, RuntimeError, OSError, subprocess.SubprocessError):
        return False
    return len(speech.phonemes) > 0 and bool(np.any(speech.audio))


def _clean(text: str) -> str:
    """ASCII text without ``"`` and ``\\`` (safe inside a Scheme string) or control characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    ascii_text = ascii_text.replace('"', " ").replace("\\", " ")
    return "".join(c if c.isprintable() else " " for c in ascii_text)


# --- the programs ------------------------------------------------------------------------------


def _festival(spec: _Voice, voice: str, text: str, stretch: float, tmp: Path) -> list[tuple[str, float]]:
    rate = ""
    if spec.name.endswith("_hts"):  # the HTS engine makes its own durations: speed it up or down
        rate = f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {1.0 / stretch:.6f}))))\n'
    script = (
        f"(voice_{spec.name})\n"
        f"(Parameter.set 'Duration_Stretch {stretch:.6f})\n"
        f"{rate}"
        f'(set! utt (utt.synth (Utterance Text "{text}")))\n'
        '(utt.save.wave utt "speech.wav" \'riff)\n'
        '(utt.save.segs utt "speech.segs")\n'
    )
    (tmp / "synth.scm").write_text(script, encoding="ascii")
    result = _run(["festival", "--batch", "synth.scm"], tmp)
    if f"unbound variable : voice_{spec.name}" in result.stderr:
        raise TTSUnavailable(f"festival voice {spec.name} is not installed (apt-get install {spec.package})")
    if result.returncode != 0 or not (tmp / "speech.segs").exists() or not (tmp / "speech.wav").exists():
        raise RuntimeError(f"festival failed for {voice} (exit {result.returncode}): {result.stderr[-500:]}")
    return _parse_segs((tmp / "speech.segs").read_text(encoding="ascii", errors="replace"), voice)


def _parse_segs(segs: str, voice: str) -> list[tuple[str, float]]:
    """``utt.save.segs`` output: header lines up to ``#``, then ``end_time colour phone`` lines."""
    lines = segs.splitlines()
    try:
        body = lines[lines.index("#") + 1 :]
    except ValueError:
        raise RuntimeError(f"festival wrote no segment header for {voice}") from None
    marks = []
    for line in body:
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise RuntimeError(f"unexpected festival segment line for {voice}: {line!r}")
        marks.append((fields[2], float(fields[0])))
    return marks


def _flite(spec: _Voice, voice: str, text: str, stretch: float, tmp: Path) -> list[tuple[str, float]]:
    if spec.name not in _flite_voices():  # flite would fall back to kal without a word
        raise TTSUnavailable(f"flite has no voice {spec.name!r} (apt-get install {spec.package})")
    # -t, not -f: a text file is split into utterances, each printed on its own line with times from 0
    command = ["flite", "-voice", spec.name, "--setf", f"duration_stretch={stretch:.6f}", "-psdur"]
    result = _run([*command, "-t", text, "-o", "speech.wav"], tmp)
    if result.returncode != 0 or not (tmp / "speech.wav").exists():
        raise RuntimeError(f"flite failed for {voice} (exit {result.returncode}): {result.stderr[-500:]}")
    return _parse_psdur(result.stdout, voice)


def _parse_psdur(out: str, voice: str) -> list[tuple[str, float]]:
    """``flite -psdur`` output: ``phone:end_time`` tokens separated by spaces, one line per utterance."""
    if "\n" in out.strip():
        raise RuntimeError(f"flite split the text for {voice} into several utterances, each timed from 0")
    marks = []
    for token in out.split():
        match = _FLITE_TOKEN.fullmatch(token)
        if match is None:
            raise RuntimeError(f"unexpected flite segment {token!r} for {voice}")
        marks.append((match[1], float(match[2])))
    return marks


def _flite_voices() -> frozenset[str]:
    """The names ``flite -lv`` lists ("Voices available: kal awb_time kal16 awb rms slt")."""
    global _FLITE_VOICES
    if _FLITE_VOICES is None:
        result = _run(["flite", "-lv"], None)
        _, _, names = result.stdout.partition(":")
        _FLITE_VOICES = frozenset(names.split())
    return _FLITE_VOICES


def _run(command: list[str], cwd: Path | None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, errors="replace", timeout=TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise TTSUnavailable(f"{command[0]} is not installed (apt-get install {command[0]})") from None


# --- timings -----------------------------------------------------------------------------------


def _timeline(marks: list[tuple[str, float]], duration: float, voice: str) -> tuple[Phoneme, ...]:
    """``(phone, end)`` pairs -> phonemes tiling ``[0, duration)``: each starts where the previous ends."""
    phonemes: list[Phoneme] = []
    start = 0.0
    for phone, end in marks:
        symbol = PHONES.get(phone)
        if symbol is None:
            raise RuntimeError(f"{voice} spoke phone {phone!r}, which PHONES does not map")
        end = min(end, duration)
        if end - start >= MIN_PHONEME:
            phonemes.append(Phoneme(symbol, start, end))
            start = end
    if duration - start >= MIN_PHONEME:
        last = phonemes[-1] if phonemes else None
        if last is not None and (last.symbol == "_" or duration - start <= TAIL_SLACK):
            phonemes[-1] = Phoneme(last.symbol, last.start, duration)
        else:
            phonemes.append(Phoneme("_", start, duration))
    elif phonemes:
        phonemes[-1] = Phoneme(phonemes[-1].symbol, phonemes[-1].start, duration)
    return tuple(phonemes)


VOICELESS_STOPS = frozenset({"p", "t", "k", "tS"})
BURST_FRAME = 0.005  # s
BURST_RISE_DB = 12.0
MAX_CLOSURE = 0.12  # s searched for the burst from a stop's start


def _burst(audio: np.ndarray, start: float, end: float) -> float | None:
    """Time of the release burst of a stop whose closure starts at ``start``, or None: the first
    ``BURST_FRAME`` after the closure's quietest that is ``BURST_RISE_DB`` louder than it."""
    hop = int(BURST_FRAME * SAMPLE_RATE)
    a, b = int(start * SAMPLE_RATE), int(min(end, start + MAX_CLOSURE) * SAMPLE_RATE)
    frames = (b - a) // hop
    if frames < 3:
        return None
    seg = audio[a : a + frames * hop].astype(np.float64).reshape(frames, hop)
    db = 10 * np.log10((seg**2).mean(axis=1) + 1e-10)
    quiet = int(np.argmin(db))
    rise = np.flatnonzero(db[quiet:] > db[quiet] + BURST_RISE_DB)
    return None if not len(rise) else start + (quiet + int(rise[0])) * BURST_FRAME


def _at_bursts(phonemes: tuple[Phoneme, ...], audio: np.ndarray) -> tuple[Phoneme, ...]:
    """Voiceless stops start at their burst (espeak's convention), the closure given to the phoneme before."""
    out = list(phonemes)
    for i in range(1, len(out)):
        p = out[i]
        if p.symbol not in VOICELESS_STOPS:
            continue
        burst = _burst(audio, p.start, p.end)
        if burst is None or not p.start < burst < p.end - MIN_PHONEME:
            continue
        out[i - 1] = Phoneme(out[i - 1].symbol, out[i - 1].start, burst)
        out[i] = Phoneme(p.symbol, burst, p.end)
    return tuple(out)
