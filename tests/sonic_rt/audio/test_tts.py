from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from sonic_rt.audio import tts
from sonic_rt.errors import BadSpeechParameter, EmptyText, TTSUnavailable, UnknownVoice

HELLO = "Hello world, this is a test."
NIHAO = "你好，世界"


@pytest.fixture(scope="module")
def espeak():
    try:
        tts.voices()
    except TTSUnavailable:
        pytest.skip("espeak-ng library not installed (apt-get install espeak-ng)")


@pytest.fixture(scope="module")
def hello(espeak) -> tts.Speech:
    return tts.synthesize(HELLO)


def _check_timeline(speech: tts.Speech) -> None:
    starts = np.array([p.start for p in speech.phonemes])
    ends = np.array([p.end for p in speech.phonemes])
    assert starts[0] >= 0 and np.all(np.diff(starts) > 0) and np.all(ends > starts)
    assert np.array_equal(starts[1:], ends[:-1]) and ends[-1] == pytest.approx(speech.duration)
    for word in speech.words:
        assert 0 <= word.start < word.end <= speech.duration


def _rms(speech: tts.Speech, start: float, end: float) -> float:
    seg = speech.audio[int(start * speech.sample_rate) : int(end * speech.sample_rate)]
    return float(np.sqrt(np.mean(seg**2)))


def test_english_audio_and_timeline(hello):
    assert hello.sample_rate == 16000 and hello.audio.dtype == np.float32 and hello.audio.ndim == 1
    assert 1.2 < hello.duration < 3.5
    assert np.abs(hello.audio).max() <= 1.0 and np.sqrt(np.mean(hello.audio**2)) > 0.02
    _check_timeline(hello)
    symbols = [p.symbol for p in hello.phonemes]
    assert symbols[:4] == ["h", "@", "l", "oU"] and "_:" in symbols
    assert [w.text for w in hello.words] == ["Hello", "world", "this", "is", "a", "test"]


def test_timings_line_up_with_the_resampled_audio(hello):
    vowels = [p for p in hello.phonemes if p.symbol in ("oU", "3:", "E")]
    pauses = [p for p in hello.phonemes if p.symbol.startswith("_") and p.end - p.start > 0.1]
    assert len(vowels) == 3 and pauses
    quietest_vowel = min(_rms(hello, p.start, p.end) for p in vowels)
    loudest_pause = max(_rms(hello, p.start + 0.01, p.end - 0.01) for p in pauses)
    assert quietest_vowel > 0.05 > 0.01 > loudest_pause


def test_mandarin_from_characters(espeak):
    speech = tts.synthesize(NIHAO, voice="cmn")
    assert 0.8 < speech.duration < 3.0 and np.sqrt(np.mean(speech.audio**2)) > 0.02
    _check_timeline(speech)
    symbols = {p.symbol for p in speech.phonemes}
    assert {"n", "i", "Au", "s.", "i.", "iE"} <= symbols
    assert "T" not in symbols  # tones are not read out as English digits ("ni three")
    assert [w.text for w in speech.words] == ["你", "好", "世", "界"]


def test_same_request_gives_identical_audio(hello):
    tts.synthesize("Something else in between.", voice="en-gb+f2", rate=220)
    again = tts.synthesize(HELLO)
    assert np.array_equal(again.audio, hello.audio) and again.phonemes == hello.phonemes


def test_concurrent_calls_are_serialised(hello):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: tts.synthesize(HELLO), range(4)))
    assert all(np.array_equal(r.audio, hello.audio) for r in results)


@pytest.mark.parametrize("voice", ["en-us+f3", "en-us+m2", "en-gb"])
def test_voices_and_variants_change_the_audio(hello, voice):
    other = tts.synthesize(HELLO, voice=voice)
    _check_timeline(other)
    n = min(len(other.audio), len(hello.audio))
    assert not np.allclose(other.audio[:n], hello.audio[:n], atol=1e-3)


def test_mandarin_variant(espeak):
    plain, female = tts.synthesize(NIHAO, voice="cmn"), tts.synthesize(NIHAO, voice="cmn+f2")
    assert [p.symbol for p in plain.phonemes] == [p.symbol for p in female.phonemes]
    assert len(plain.audio) != len(female.audio) or not np.array_equal(plain.audio, female.audio)


def test_rate_and_pitch(espeak):
    slow, fast = tts.synthesize(HELLO, rate=120), tts.synthesize(HELLO, rate=300)
    assert fast.duration < 0.7 * slow.duration
    low, high = tts.synthesize(HELLO, pitch=10), tts.synthesize(HELLO, pitch=90)
    assert not np.array_equal(low.audio[:1000], high.audio[:1000])


def test_end_pause(hello):
    clipped = tts.synthesize(HELLO, end_pause=False)
    assert hello.duration - clipped.duration > 0.15


def test_voice_listing(espeak):
    english = tts.voices("en")
    assert {"en-us", "en-gb"} <= set(english) and all(v.startswith("en") for v in english)
    assert "cmn" in tts.voices() and {"f3", "m2"} <= set(tts.variants())


def test_user_errors_have_codes():
    with pytest.raises(EmptyText) as err:
        tts.synthesize("  \n")
    assert err.value.code == "empty_text"
    with pytest.raises(BadSpeechParameter, match="rate") as err:
        tts.synthesize(HELLO, rate=1000)
    assert err.value.code == "bad_speech_parameter"


@pytest.mark.parametrize("voice", ["xx-nowhere", "en-us+nobody", ""])
def test_unknown_voice(espeak, voice):
    with pytest.raises(UnknownVoice) as err:
        tts.synthesize(HELLO, voice=voice)
    assert err.value.code == "unknown_voice"


def test_missing_library_is_reported(monkeypatch):
    monkeypatch.setattr(tts, "LIBRARY", "libespeak-ng-not-here.so.1")
    monkeypatch.setattr(tts.ctypes.util, "find_library", lambda name: None)
    with pytest.raises(TTSUnavailable, match="apt-get install espeak-ng") as err:
        tts.synthesize(HELLO)
    assert err.value.code == "tts_unavailable"
