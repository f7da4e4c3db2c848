import shutil

import numpy as np
import pytest

from sonic_rt.audio import FPS, tts
from sonic_rt.errors import BadSpeechParameter, EmptyText, UnknownVoice
from sonic_rt.motion import vector
from sonic_rt.train import visemes, voices

pytestmark = pytest.mark.skipif(
    shutil.which("festival") is None, reason="festival not installed (apt-get install festival)"
)

SENTENCE = "Peter picked a pepper, and Paul paid."
N_P = 6  # Peter, picked, pepper (2), Paul, paid
VARIED = "Judge the church, Jack: azure vision, thin bath. Hoy, a young cow sang."


@pytest.fixture(scope="module")
def working() -> tuple[str, ...]:
    found = voices.available()
    if not found:
        pytest.skip("no festival or flite voice works here")
    return found


@pytest.fixture(scope="module", params=voices.VOICES)
def speech(request, working) -> tts.Speech:
    if request.param not in working:
        pytest.skip(f"{request.param} does not work here")
    return voices.synthesize(SENTENCE, request.param)


def _rms(speech: tts.Speech, start: float, end: float) -> float:
    seg = speech.audio[int(start * speech.sample_rate) : int(end * speech.sample_rate)]
    return float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) if len(seg) else 0.0


def test_festival_voices_work_here(working):
    assert {"festival:us_slt_hts", "festival:kal_diphone", "festival:ked_diphone"} <= set(working)
    assert set(working) <= set(voices.VOICES)


def test_audio_is_plausible(speech):
    assert speech.sample_rate == 16000 and speech.audio.dtype == np.float32 and speech.audio.ndim == 1
    assert 0.5 < speech.duration < 5.0
    assert np.abs(speech.audio).max() <= 1.0
    assert _rms(speech, 0, speech.duration) > 0.01
    assert speech.words == ()


def test_phonemes_tile_the_audio(speech):
    ph = speech.phonemes
    assert ph[0].start == 0.0 and ph[-1].end == pytest.approx(speech.duration)
    assert all(a.end == b.start for a, b in zip(ph, ph[1:], strict=False))
    assert all(p.end > p.start for p in ph)
    assert ph[0].symbol == "_" and ph[-1].symbol == "_"


def test_symbols_are_espeak_mnemonics(speech):
    symbols = [p.symbol for p in speech.phonemes]
    assert all(visemes.known(s) for s in symbols), symbols
    assert symbols.count("p") == N_P, symbols
    assert "b" not in symbols and "m" not in symbols


def test_jaw_closes_at_every_p(speech):
    """A /p/ starts at its burst, as espeak's do: the lips close over the silence before it."""
    n_frames = int(np.ceil(speech.duration * FPS))
    jaw = visemes.targets(speech.phonemes, n_frames)[:, vector.INDEX["jaw_open"]]
    centres = (np.arange(n_frames) + 0.5) / FPS
    for p in speech.phonemes:
        if p.symbol == "p":
            inside = (centres >= p.start - visemes.CLOSURE_LEAD) & (centres < p.end)
            assert inside.any() and jaw[inside].min() < 0.03, (p, jaw[inside])


def test_pauses_are_quiet_and_speech_is_loud(speech):
    """The timings are real: the audio is loud in the phonemes and quiet in the pauses, also mid-sentence."""
    margin = 0.02
    spans = [(p, p.start + margin, p.end - margin) for p in speech.phonemes if p.end - p.start > 2 * margin]
    pause = [_rms(speech, a, b) for p, a, b in spans if p.symbol == "_"]
    talk = [_rms(speech, a, b) for p, a, b in spans if p.symbol != "_"]
    assert np.mean(pause) < 0.1 * np.mean(talk)
    inner = [p for p in speech.phonemes[1:-1] if p.symbol == "_" and p.end - p.start > 0.08]
    assert inner, "the comma should give a pause"
    for p in inner:
        assert _rms(speech, p.start + margin, p.end - margin) < 0.1 * np.mean(talk)
    # the vowel after a sentence-initial /p/ is loud
    vowel = next(p for p in speech.phonemes if p.symbol == "i:")
    assert _rms(speech, vowel.start, vowel.end) > 0.3 * np.mean(talk)


def test_every_phone_of_varied_text_maps(working):
    for voice in working:
        speech = voices.synthesize(VARIED, voice)
        unknown = {p.symbol for p in speech.phonemes if not visemes.known(p.symbol)}
        assert not unknown, (voice, unknown)
        assert {"tS", "dZ", "Z", "T", "D", "N", "OI", "aU"} <= {p.symbol for p in speech.phonemes}, voice


def test_stretch_slows_down(working):
    voice = next((v for v in working if v.startswith("flite:")), working[0])
    slow = voices.synthesize("Peter picked a pepper.", voice, stretch=1.3)
    fast = voices.synthesize("Peter picked a pepper.", voice, stretch=0.8)
    assert slow.duration > 1.3 * fast.duration
    with pytest.raises(BadSpeechParameter):
        voices.synthesize("Peter", voice, stretch=3.0)


def test_errors():
    with pytest.raises(EmptyText):
        voices.synthesize("   ")
    with pytest.raises(EmptyText):
        voices.synthesize("你好")
    with pytest.raises(UnknownVoice):
        voices.synthesize("hello", "festival:nobody")
    with pytest.raises(UnknownVoice):
        voices.synthesize("hello", "en-us")


def test_text_is_made_safe_for_scheme(working):
    if "festival:kal_diphone" not in working:
        pytest.skip("festival:kal_diphone does not work here")
    speech = voices.synthesize('He said "hi" \\ (quit) café', "festival:kal_diphone")
    assert speech.duration > 0.5 and len(speech.phonemes) > 5


def test_timeline_rules():
    t = voices._timeline([("pau", 0.2), ("p", 0.2), ("iy", 0.5), ("pau", 0.9)], 0.8, "x")
    assert [(p.symbol, p.start, p.end) for p in t] == [("_", 0.0, 0.2), ("i:", 0.2, 0.5), ("_", 0.5, 0.8)]
    t = voices._timeline([("pau", 0.2), ("iy", 0.5)], 0.9, "x")
    assert [(p.symbol, p.start, p.end) for p in t] == [("_", 0.0, 0.2), ("i:", 0.2, 0.5), ("_", 0.5, 0.9)]
    with pytest.raises(RuntimeError):
        voices._timeline([("qq", 0.2)], 0.2, "x")


def test_a_voiceless_stop_starts_at_its_burst(speech):
    """The silence of a /p/'s closure lies before its start, the burst right after it (for most
    of them: a weak burst is not found, and the stop keeps the voice's own time)."""
    a = speech.audio.astype(np.float64)
    rate = speech.sample_rate
    heard = []
    for p, before in zip(speech.phonemes[1:], speech.phonemes, strict=False):
        if p.symbol != "p" or before.symbol == "_":  # after a pause there is no closure to hear
            continue
        closure = a[int((p.start - 0.01) * rate) : int(p.start * rate)]
        burst = a[int(p.start * rate) : int((p.start + 0.015) * rate)]
        heard.append(np.sqrt(np.mean(burst**2)) > 2 * np.sqrt(np.mean(closure**2)) + 1e-6)
    assert np.mean(heard) >= 0.6, heard
