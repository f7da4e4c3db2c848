"""The phone alphabet of the phonetic track: viseme classes, and what each phone symbol means.

A *class* is a mouth shape a lip-reader can tell apart, named by IPA (``"p"`` is the sealed lips
of /p b m/, ``"f"`` the lower lip at the teeth of /f v/, ``"u"`` the rounded lips of /u/), plus
``"rest"`` (a pause) and ``"h"`` (glottal: the mouth shaped by its neighbours). Each class has an
articulatory target (jaw opening, lip width, rounding, upper and lower lip), which the training
targets (``sonic_rt.train.visemes``) and the phonetic features (``sonic_rt.audio.phonetic``) share.

Symbols of two alphabets map onto the classes: espeak-ng's phoneme mnemonics (what the embedded
text-to-speech reports, for every language it speaks) and the CMU/ARPAbet phones that
pocketsphinx's en-us model recognises. A symbol maps to one class or, for a diphthong or a
Mandarin final, a sequence spread evenly over its interval.
"""

from __future__ import annotations

import numpy as np

# (jaw_open, lip_width, lip_round, upper_lip, lower_lip), named by IPA. ``None``: the consonant
# leaves that channel to its neighbours (lips round through the /b/ of "a boot").
_ = None
TARGETS: dict[str, tuple[float | None, ...]] = {
    "rest": (0.0, 0.0, 0.0, 0.0, 0.0),
    # vowels
    "i": (0.12, 0.50, 0.00, 0.05, 0.00),
    "ɪ": (0.17, 0.35, 0.00, 0.03, 0.00),
    "e": (0.20, 0.40, 0.00, 0.05, 0.00),
    "ɛ": (0.27, 0.30, 0.00, 0.05, 0.00),
    "æ": (0.36, 0.35, 0.00, 0.10, 0.05),
    "a": (0.40, 0.15, 0.00, 0.05, 0.05),
    "ɑ": (0.44, 0.00, 0.00, 0.00, 0.05),
    "ʌ": (0.28, 0.05, 0.00, 0.00, 0.00),
    "ə": (0.17, 0.00, 0.00, 0.00, 0.00),
    "ɜ": (0.18, -0.05, 0.15, 0.00, 0.00),
    "ɚ": (0.15, -0.15, 0.30, 0.00, 0.00),
    "ɒ": (0.40, -0.10, 0.20, 0.00, 0.05),  # also en-us "0", an unrounded [ɑ]: little rounding
    "ɔ": (0.30, -0.35, 0.55, 0.00, 0.00),
    "o": (0.22, -0.45, 0.70, 0.00, 0.00),
    "ʊ": (0.14, -0.40, 0.60, 0.00, 0.00),
    "u": (0.10, -0.60, 0.90, 0.00, 0.00),
    "y": (0.10, -0.45, 0.80, 0.00, 0.00),
    "ɤ": (0.22, 0.10, 0.00, 0.00, 0.00),  # Mandarin e (ge, de)
    "ɿ": (0.09, 0.25, 0.00, 0.00, 0.00),  # Mandarin apical i after z c s
    "ʅ": (0.10, 0.00, 0.10, 0.00, 0.00),  # Mandarin apical i after zh ch sh r
    # consonants
    "p": (0.00, _, _, 0.00, 0.00),  # p b m: lips sealed
    "β": (0.03, _, _, 0.00, 0.00),
    "f": (0.04, _, _, 0.15, -0.30),  # lower lip raised to the upper teeth
    "θ": (0.08, _, _, 0.05, 0.00),
    "t": (0.08, _, _, 0.00, 0.00),  # t d n
    "s": (0.05, _, _, 0.05, 0.00),  # teeth together
    "l": (0.13, _, _, 0.00, 0.00),
    "ʃ": (0.06, -0.35, 0.55, 0.15, 0.10),  # English sh ch j: lips rounded and flared
    "ʂ": (0.07, _, _, 0.05, 0.05),  # Mandarin zh ch sh r
    "ɕ": (0.06, _, _, 0.05, 0.00),  # Mandarin j q x
    "ɹ": (0.10, -0.30, 0.45, 0.00, 0.00),
    "j": (0.08, _, _, 0.00, 0.00),
    "w": (0.05, -0.65, 0.90, 0.00, 0.00),
    "k": (0.13, _, _, 0.00, 0.00),
}
del _
_ARRAYS = {name: np.array([np.nan if v is None else v for v in t]) for name, t in TARGETS.items()}
VOWELS = frozenset(["i", "ɪ", "e", "ɛ", "æ", "a", "ɑ", "ʌ", "ə", "ɜ", "ɚ", "ɒ", "ɔ", "o", "ʊ", "u", "y", "ɤ", "ɿ", "ʅ"])
FALLBACK_VOWEL, FALLBACK_CONSONANT = "ə", "t"
_VOWEL_INITIALS = frozenset("aeiouyAEIOUVY@03&")


def _table(spec: str) -> dict[str, tuple[str, ...]]:
    """``"sym sym ... = t1 t2"`` lines -> {sym: (t1, t2)}."""
    out = {}
    for line in spec.strip().splitlines():
        symbols, names = line.split("=")
        for symbol in symbols.split():
            out[symbol] = tuple(names.split())
    return out


# espeak-ng mnemonics (phoneme tables en, en-us and cmn of espeak-ng 1.51) -> target sequence.
# Symbols that differ only by a trailing digit are listed anyway; tone digits are stripped on lookup.
PHONEMES: dict[str, tuple[str, ...]] = _table(
    """
    p b m m- ph = p
    B = β
    f v v# = f
    T D = θ
    t t# t2 t[ th d d# d[ * ** n n- n. = t
    s z z# z/2 #X1 ts tsh dz = s
    l l- l/ l/2 l/3 l^ l. l# L L/ = l
    S Z tS dZ = ʃ
    S; Z; s; z; tS; tS;h dZ; = ɕ
    s. z. ts. ts.h = ʂ
    r r- r/ r. R R2 R3 = ɹ
    j ; c J C J^ n^ = j
    w w# = w
    k g N N- kh x X Q Q^ Q" q r" = k
    i i: = i
    I I# I2 I2# = ɪ
    e e: e# = e
    E E# E2 = ɛ
    a = æ
    aa = a
    A A: A# A~ = ɑ
    V a# = ʌ
    @ @- @# @2 @5 a2 a#2 = ə
    3: = ɜ
    3 @r = ɚ
    0 0# 02 = ɒ
    O O: O2 O~ = ɔ
    o o: = o
    U ong = ʊ
    u u: = u
    y yu = y
    o- = ɤ
    i[ = ɿ
    i. = ʅ
    @L = ə l
    aI ai = a ɪ
    aI@ = a ɪ ə
    aI3 = a ɪ ɚ
    aU = a ʊ
    aU@ = a ʊ ə
    Au = ɑ ʊ
    eI ei = e ɪ
    OI = ɔ ɪ
    oU oU# ou = o ʊ
    e@ = ɛ ɚ
    i@ i@3 = ɪ ə
    IR = ɪ ɚ
    A@ = ɑ ɚ
    O@ = ɔ ɚ
    o@ = o ɚ
    U@ = ʊ ɚ
    VR = ʌ ɹ
    iA = i ɑ
    iAu = i ɑ ʊ
    iE = i ɛ
    io = i o
    iou = i o ʊ
    uA = u ɑ
    ua = u a
    uai = u a ɪ
    u@ = u ə
    uei = u e ɪ
    uo = u o
    y& yE = y ɛ
    y@ = y ə
    yi = y ɪ
    """
)
TRANSPARENT = frozenset({"h", "?"})  # shaped by their neighbours
# Stops and affricates whose closure precedes the event (espeak marks the release) ...
CLOSURE_BEFORE = frozenset(
    ["p", "t", "k", "t#", "t2", "t[", "c", "q", "ph", "th", "kh", "tS", "tS;", "tS;h", "ts", "tsh", "ts.", "ts.h"]
)
# ... and those whose event is the closure's start (voiced: the closure is voiced).
CLOSURE_AFTER = frozenset(["b", "d", "g", "d#", "d[", "J", "dZ", "dZ;", "dz"])


def is_pause(symbol: str) -> bool:
    return symbol.startswith("_") or symbol in ("", "||")


def known(symbol: str) -> bool:
    """Whether ``symbol`` is in the table (after stripping tone digits), a pause or transparent."""
    return _lookup(symbol) is not None or is_pause(symbol) or symbol in TRANSPARENT


def classify(symbol: str) -> tuple[str, ...]:
    """Target names for one mnemonic: ``("rest",)`` for a pause, ``()`` for a transparent phoneme,
    a fallback guessed from the first character for one not in the table."""
    if is_pause(symbol):
        return ("rest",)
    if symbol in TRANSPARENT:
        return ()
    names = _lookup(symbol)
    if names is not None:
        return names
    return (FALLBACK_VOWEL,) if symbol.lstrip("'")[:1] in _VOWEL_INITIALS else (FALLBACK_CONSONANT,)


def _lookup(symbol: str) -> tuple[str, ...] | None:
    names = PHONEMES.get(symbol)
    if names is None and symbol.rstrip("0123456789"):
        names = PHONEMES.get(symbol.rstrip("0123456789"))
    return names


TRANSPARENT_CLASS = "h"
CLASSES: tuple[str, ...] = ("rest", TRANSPARENT_CLASS, *(name for name in TARGETS if name != "rest"))
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
REST = CLASS_INDEX["rest"]


def espeak_classes(symbol: str) -> tuple[str, ...]:
    """Classes for one espeak mnemonic; a transparent phoneme is the class ``"h"``."""
    return classify(symbol) or (TRANSPARENT_CLASS,)


# CMU / ARPAbet phones (pocketsphinx en-us, without stress) -> classes.
CMU: dict[str, tuple[str, ...]] = _table(
    """
    SIL = rest
    P B M = p
    F V = f
    TH DH = θ
    T D N = t
    S Z = s
    L = l
    SH ZH CH JH = ʃ
    R = ɹ
    Y = j
    W = w
    K G NG = k
    HH = h
    IY = i
    IH = ɪ
    EH = ɛ
    AE = æ
    AA = ɑ
    AH = ʌ
    AO = ɔ
    UH = ʊ
    UW = u
    ER = ɚ
    EY = e ɪ
    AY = a ɪ
    AW = a ʊ
    OW = o ʊ
    OY = ɔ ɪ
    """
)


def cmu_classes(phone: str) -> tuple[str, ...]:
    """Classes for a CMU phone; fillers (``+NSN+``, ``+SPN+``, breath, noise) and unknowns are rest."""
    return CMU.get(phone.upper(), ("rest",))
