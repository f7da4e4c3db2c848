"""Embedded text-to-speech: espeak-ng's C library through ctypes, with phoneme and word timings.

``synthesize(text, voice)`` returns 16 kHz mono float32 audio plus, for every phoneme espeak
spoke, its mnemonic (``"h"``, ``"@"``, ``"oU"``; Mandarin ``"ts.h"``, ``"iAu"``) and its interval
in seconds on the returned audio's timeline. Voices are espeak language codes (``"en-us"``,
``"en-gb"``, ``"cmn"``), optionally with a speaker variant: ``"en-us+f3"``, ``"cmn+m2"``.

espeak-ng is one C library with global state, so every call holds a module lock. Each call also
loads the library afresh and unloads it afterwards (about 1 ms): espeak keeps synthesis state in C
statics that neither ``espeak_Initialize`` nor ``espeak_Terminate`` resets (the pitch-flutter
phase in ``wavegen.c``, the gain control), which made the same request give different audio and
durations depending on what was spoken before. A fresh load makes output a pure function of the
request. The price: ``espeak_Terminate`` does not free everything a load allocates, about 3 kB per
request (about 200 kB when Mandarin text switches to English for Latin words), which a
long-running server should keep in mind. (Another module of this process holding the library
open would defeat the unload, and with it the determinism.)

Timings come from espeak's own event stream: ``espeakEVENT_PHONEME`` / ``espeakEVENT_WORD`` carry
``sample``, the index of the 22.05 kHz output sample at which the unit starts (``audio_position``
is the same in whole milliseconds). The PyAV resampler keeps time zero and duration, so
``sample / native_rate`` seconds is the same instant in the 16 kHz audio. espeak marks a voiceless
stop at its burst: the silent closure before it belongs to the previous phoneme.
"""

from __future__ import annotations

import _ctypes
import ctypes
import ctypes.util
import threading
from dataclasses import dataclass

import numpy as np

from ..errors import BadSpeechParameter, EmptyText, TTSUnavailable, UnknownVoice
from . import SAMPLE_RATE
from .decode import ChunkResampler

LIBRARY = "libespeak-ng.so.1"  # tried first; elsewhere ctypes.util.find_library("espeak-ng")
INSTALL_HINT = "apt-get install espeak-ng"
RATE_RANGE = (80, 450)  # words per minute: espeakRATE_MINIMUM, espeakRATE_MAXIMUM
PITCH_RANGE = (0, 100)  # espeakPITCH and espeakRANGE, 50 = the voice's own
MIN_PHONEME = 1e-3  # s; shorter phoneme events (espeak's closing "_" at the very end) are dropped

# From <espeak-ng/speak_lib.h>, API revision 12.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000  # report missing data with -1 instead of exit()
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
_EE_OK = 0

# espeak-ng 1.51's "cmn" voice turns each Chinese character into pinyin with a tone digit and then,
# because that voice reads Latin text as English, says the digit in English ("ni three hao three").
# "cmn-Latn-pinyin" reads characters through the same dictionary and the tones as tones.
_VOICE_REPLACEMENTS = {"sit/cmn": "sit/cmn-Latn-pinyin"}


@dataclass(frozen=True, slots=True)
class Phoneme:
    """One espeak phoneme mnemonic spoken over ``[start, end)`` seconds of the audio."""

    symbol: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Word:
    """A word of the input text (as espeak split it) and when it is spoken, in seconds."""

    text: str
    start: float
    end: float


@dataclass(frozen=True, eq=False)
class Speech:
    """Synthesised speech: ``audio`` is ``(n,)`` float32 in [-1, 1] at ``sample_rate``.

    ``phonemes`` tile ``[phonemes[0].start, duration)`` in order, pauses included (symbols starting
    with ``_``); ``words`` are in order and lie inside it.
    """

    audio: np.ndarray
    sample_rate: int
    phonemes: tuple[Phoneme, ...]
    words: tuple[Word, ...]

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


def synthesize(
    text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50, pitch_range: int = 50, *, end_pause: bool = True
) -> Speech:
    """Speak ``text`` (UTF-8; Chinese characters for ``cmn``) in ``voice`` at ``rate`` words per minute.

    ``pitch`` and ``pitch_range`` are 0..100 (50 = the voice's own). ``end_pause`` keeps espeak's
    sentence-final pause (about 0.3 s) so the speech ends in silence.
    Raises ``EmptyText``, ``UnknownVoice``, ``BadSpeechParameter`` or ``TTSUnavailable``.
    """
    if not text.strip():
        raise EmptyText("nothing to say: the text is empty")
    _check_range("rate", rate, RATE_RANGE)
    _check_range("pitch", pitch, PITCH_RANGE)
    _check_range("pitch_range", pitch_range, PITCH_RANGE)
    text = text.replace("\0", " ")  # espeak reads a C string
    flags = _CHARS_UTF8 | (_ENDPAUSE if end_pause else 0)
    with _LOCK, _Engine() as engine:
        engine.set_voice(_resolve(engine, voice), voice)
        engine.set_parameters(rate, pitch, pitch_range)
        pcm, events = engine.synth(text, flags)
        native_rate = engine.sample_rate
    audio = _resample(pcm, native_rate)
    phonemes, words = _timeline(events, native_rate, len(audio) / SAMPLE_RATE, text)
    return Speech(audio=audio, sample_rate=SAMPLE_RATE, phonemes=phonemes, words=words)


def voices(language_prefix: str | None = None) -> list[str]:
    """Language codes ``synthesize`` accepts as ``voice`` (lower case, sorted), e.g. ``voices("en")``."""
    languages = _catalogue().languages
    prefix = (language_prefix or "").lower()
    return [code for code in languages if code.startswith(prefix)]


def variants() -> list[str]:
    """Speaker variants to append to a voice as ``+name`` (``"f3"``, ``"m2"``, ``"klatt"``), sorted."""
    return sorted(_catalogue().variants.values(), key=str.lower)


# --- the library ------------------------------------------------------------------------------


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT``."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character index
        ("length", ctypes.c_int),  # word length in characters
        ("audio_position", ctypes.c_int),  # ms, truncated from `sample`
        ("sample", ctypes.c_int),  # output sample index where the unit starts
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    """``espeak_VOICE``; ``languages`` is a run of (priority byte, NUL-terminated code), ended by 0."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_LOCK = threading.Lock()
_CATALOGUE: _Catalogue | None = None


@dataclass(frozen=True, slots=True)
class _RawEvent:
    kind: int
    sample: int
    text_position: int
    length: int
    symbol: str


class _Collector:
    """The synth callback: gathers s16 samples and the phoneme/word events."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.events: list[_RawEvent] = []
        self.error: BaseException | None = None

    def __call__(self, wav, n_samples: int, events) -> int:
        try:
            if wav and n_samples > 0:
                self.chunks.append(ctypes.string_at(wav, 2 * n_samples))
            i = 0
            while events and (ev := events[i]).type != _EVENT_LIST_TERMINATED:
                if ev.type in (_EVENT_PHONEME, _EVENT_WORD):
                    symbol = ev.id.string.decode("utf-8", "replace") if ev.type == _EVENT_PHONEME else ""
                    self.events.append(_RawEvent(ev.type, ev.sample, ev.text_position, ev.length, symbol))
                i += 1
        except BaseException as exc:  # an exception cannot cross the C boundary: abort, re-raise after
            self.error = exc
            return 1
        return 0


class _Engine:
    """One load of the library for one request: initialised on entry, terminated and unloaded on exit."""

    def __enter__(self) -> _Engine:
        self.lib = _open_library()
        self._declare()
        self.sample_rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT
        )
        if self.sample_rate <= 0:
            self._unload()
            raise TTSUnavailable(f"espeak-ng is installed but its voice data was not found ({INSTALL_HINT})")
        return self

    def __exit__(self, *exc_info) -> None:
        self.lib.espeak_Terminate()
        self._unload()

    def _unload(self) -> None:
        _ctypes.dlclose(self.lib._handle)
        del self.lib

    def _declare(self) -> None:
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))

    def set_voice(self, espeak_name: str, requested: str) -> None:
        if self.lib.espeak_SetVoiceByName(espeak_name.encode()) != _EE_OK:
            raise UnknownVoice(f"espeak-ng could not load voice {requested!r} ({espeak_name})")

    def set_parameters(self, rate: int, pitch: int, pitch_range: int) -> None:
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(param, value, 0)

    def synth(self, text: str, flags: int) -> tuple[np.ndarray, list[_RawEvent]]:
        """``(s16 samples at sample_rate, events)`` for ``text``."""
        collector = _Collector()
        callback = _SynthCallback(collector)  # referenced until synthesis returns
        self.lib.espeak_SetSynthCallback(callback)
        data = text.encode("utf-8") + b"\0"
        status = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, flags, None, None)
        if collector.error is not None:
            raise collector.error
        if status != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed with status {status}")
        pcm = np.frombuffer(b"".join(collector.chunks), dtype=np.int16)
        return pcm, collector.events

    def list_voices(self, language: bytes | None = None) -> list[tuple[str, str, list[tuple[int, str]]]]:
        """``(name, identifier, [(priority, language code), ...])`` per voice; ``b"variant"`` for variants."""
        spec = None
        if language is not None:
            buf = ctypes.create_string_buffer(language)
            spec = ctypes.pointer(_Voice(languages=ctypes.cast(buf, ctypes.c_void_p)))
        table = self.lib.espeak_ListVoices(spec)
        out = []
        i = 0
        while table[i]:
            v = table[i].contents
            out.append((v.name.decode(), v.identifier.decode(), _languages(v.languages)))
            i += 1
        return out


def _open_library() -> ctypes.CDLL:
    try:
        return ctypes.CDLL(LIBRARY)
    except OSError:
        found = ctypes.util.find_library("espeak-ng")  # other platforms and names; runs ldconfig
        if found is None:
            raise TTSUnavailable(f"the espeak-ng library is not installed ({INSTALL_HINT})") from None
        return ctypes.CDLL(found)


def _languages(address: int) -> list[tuple[int, str]]:
    raw = ctypes.cast(address, ctypes.POINTER(ctypes.c_ubyte))
    out, i = [], 0
    while priority := raw[i]:
        code = ctypes.string_at(address + i + 1)
        out.append((priority, code.decode()))
        i += len(code) + 2
    return out


# --- voices ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Catalogue:
    voices: dict[str, str]  # lower-case language code, identifier, file name or name -> identifier
    languages: tuple[str, ...]
    variants: dict[str, str]  # lower-case variant file name -> file name


def _catalogue(engine: _Engine | None = None) -> _Catalogue:
    """The installed voices, read once. Call with the lock held when passing ``engine``."""
    global _CATALOGUE
    if _CATALOGUE is None:
        if engine is None:
            with _LOCK, _Engine() as fresh:
                return _catalogue(fresh)
        voices: dict[str, str] = {}
        best: dict[str, tuple[int, str]] = {}
        for name, identifier, languages in engine.list_voices():
            for key in (name, identifier, identifier.rsplit("/", 1)[-1]):
                voices.setdefault(key.lower(), identifier)
            for priority, code in languages:
                if code.lower() not in best or priority < best[code.lower()][0]:
                    best[code.lower()] = (priority, identifier)
        voices.update({code: identifier for code, (_, identifier) in best.items()})
        variant_files = [identifier.rsplit("/", 1)[-1] for _, identifier, _ in engine.list_voices(b"variant")]
        _CATALOGUE = _Catalogue(voices, tuple(sorted(best)), {v.lower(): v for v in variant_files})
    return _CATALOGUE


def _resolve(engine: _Engine, voice: str) -> str:
    """The name to give ``espeak_SetVoiceByName`` for ``voice`` (``"en-us+f3"`` -> ``"gmw/en-US+f3"``)."""
    catalogue = _catalogue(engine)
    base, plus, variant = voice.strip().partition("+")
    identifier = catalogue.voices.get(base.lower())
    if identifier is None:
        raise UnknownVoice(f"unknown voice {base!r}; e.g. 'en-us', 'en-gb' or 'cmn' (tts.voices() lists all)")
    replacement = _VOICE_REPLACEMENTS.get(identifier)
    if replacement is not None and replacement.lower() in catalogue.voices:
        identifier = replacement
    if not plus:
        return identifier
    variant_file = catalogue.variants.get(variant.lower())
    if variant_file is None:
        raise UnknownVoice(f"unknown voice variant {variant!r}; e.g. f1-f5, m1-m8 (tts.variants() lists all)")
    return f"{identifier}+{variant_file}"


# --- audio and timings -------------------------------------------------------------------------


def _resample(pcm: np.ndarray, rate: int) -> np.ndarray:
    """s16 at ``rate`` -> float32 at SAMPLE_RATE, same time zero and duration (resampler flushed)."""
    resampler = ChunkResampler(rate)
    out = np.concatenate([resampler.push(np.ascontiguousarray(pcm, dtype=np.int16)), resampler.flush()])
    return np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)


def _is_pause(symbol: str) -> bool:
    return symbol.startswith("_")


def _timeline(
    events: list[_RawEvent], native_rate: int, duration: float, text: str
) -> tuple[tuple[Phoneme, ...], tuple[Word, ...]]:
    """Phonemes and words in seconds; each phoneme ends where the next begins, the last at ``duration``.

    Language-switch markers (``"(en)"`` inside Mandarin) and zero-length events are dropped.
    """

    def seconds(ev: _RawEvent) -> float:
        return min(ev.sample / native_rate, duration)

    marks = [
        (seconds(ev), ev.symbol)
        for ev in events
        if ev.kind == _EVENT_PHONEME and ev.symbol and not (ev.symbol.startswith("(") and ev.symbol.endswith(")"))
    ]
    ends = [t for t, _ in marks[1:]] + [duration]
    marks = [mark for mark, end in zip(marks, ends, strict=True) if end - mark[0] >= MIN_PHONEME]
    ends = [t for t, _ in marks[1:]] + [duration]
    phonemes = tuple(Phoneme(symbol, start, end) for (start, symbol), end in zip(marks, ends, strict=True))

    word_events = [ev for ev in events if ev.kind == _EVENT_WORD]
    pause_starts = [p.start for p in phonemes if _is_pause(p.symbol)]
    speech_end = phonemes[-1].end if phonemes else 0.0
    words = []
    for i, ev in enumerate(word_events):
        start = seconds(ev)
        end = seconds(word_events[i + 1]) if i + 1 < len(word_events) else speech_end
        end = min([end, *(t for t in pause_starts if t > start)])
        if end > start:
            words.append(Word(_word_text(text, ev).strip(), start, end))
    return phonemes, tuple(words)


def _word_text(text: str, ev: _RawEvent) -> str:
    begin = max(ev.text_position - 1, 0)
    if ev.length > 0:
        return text[begin : begin + ev.length]
    rest = text[begin:]
    return rest.split(maxsplit=1)[0] if rest.strip() else ""


def _check_range(name: str, value: int, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise BadSpeechParameter(f"{name} must be in {low}..{high}, got {value}")
