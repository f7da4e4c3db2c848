"""Speech or not: silero-vad with hysteresis, fed in chunks of any size."""

import numpy as np

from sonic_rt.spares import Spares
from streaming import vad as voice
from streaming.vad import VoiceActivity


def states(vad: VoiceActivity, signal: np.ndarray, chunk: int) -> list[bool]:
    return [vad.push(signal[i : i + chunk]) for i in range(0, len(signal), chunk)]


def test_silence_and_noise_are_not_speech():
    vad = VoiceActivity()
    rng = np.random.default_rng(0)
    assert not any(states(vad, np.zeros(32000, np.float32), 320))
    assert not any(states(vad, (rng.standard_normal(32000) * 0.01).astype(np.float32), 320))


def test_speech_starts_and_ends_whatever_the_chunking(sentence):
    signal = np.concatenate([np.zeros(8000, np.float32), sentence, np.zeros(16000, np.float32)])
    for chunk in (160, 320, 1600):
        s = states(VoiceActivity(), signal, chunk)
        t = np.arange(len(s)) * chunk / 16000
        assert not any(s[: int(0.4 * 16000 / chunk)])
        assert any(s) and not s[-1]
        on = t[np.argmax(s)]
        assert 0.5 <= on <= 0.9  # speech begins soon after 0.5 s
        # short gaps between words stay speech: one run, not many
        assert np.count_nonzero(np.diff(np.asarray(s, int)) == 1) <= 2


def test_reset_forgets_the_state(sentence):
    vad = VoiceActivity()
    states(vad, sentence[:16000], 320)
    vad.reset()
    assert not vad.speaking


def test_a_model_kept_from_a_stream_gone_mid_speech_decides_as_a_new_one(sentence, monkeypatch):
    monkeypatch.setattr(voice, "MODELS", Spares(voice._model, voice._clean))  # none kept yet
    signal = np.concatenate([np.zeros(8000, np.float32), sentence, np.zeros(16000, np.float32)])
    new = VoiceActivity()
    model, expected = new._model, states(new, signal, 320)
    del new
    other = VoiceActivity()
    assert other._model is model
    states(other, sentence[: len(sentence) // 2], 320)
    assert other.speaking
    del other
    again = VoiceActivity()
    assert again._model is model and voice.MODELS.made == 1
    assert states(again, signal, 320) == expected
