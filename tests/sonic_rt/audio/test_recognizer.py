"""The streaming phone recogniser on speech whose phones are known."""

import numpy as np
import pytest

from sonic_rt import audio
from sonic_rt.audio import phoneset, phonetic, recognizer
from sonic_rt.audio.recognizer import PhoneRecognizer, recognize
from sonic_rt.spares import Spares

VOWELS = {phoneset.CLASS_INDEX[c] for c in phoneset.VOWELS}
P = phoneset.CLASS_INDEX["p"]


def groups(classes: np.ndarray) -> np.ndarray:
    """0 rest, 1 vowel, 2 consonant."""
    return np.array([0 if c == phoneset.REST else 1 if c in VOWELS else 2 for c in classes])


@pytest.fixture(scope="module")
def known():
    """A sentence from a voice built from human recordings (festival), its phones known."""
    voices = pytest.importorskip("sonic_rt.train.voices")
    if "festival:us_slt_hts" not in voices.available():
        pytest.skip("festival's us_slt_hts voice is not installed (apt-get install festival festvox-us-slt-hts)")
    return voices.synthesize("Peter picked a peck of pickled peppers, then went home.", "festival:us_slt_hts")


def labels(rec: PhoneRecognizer, samples: np.ndarray) -> np.ndarray:
    parts = [rec.push(samples[i : i + 320])[0] for i in range(0, len(samples), 320)]
    return np.concatenate([*parts, rec.finish()[0]])


def test_a_decoder_kept_from_a_recogniser_gone_mid_utterance_labels_as_a_new_one(known, sentence, monkeypatch):
    monkeypatch.setattr(recognizer, "DECODERS", Spares(recognizer._decoder, recognizer._clean))  # none kept yet
    new = PhoneRecognizer()
    decoder, expected = new._decoder, labels(new, known.audio)
    del new
    other = PhoneRecognizer()  # another voice, its cepstral mean adapted to it, gone mid-sentence
    assert other._decoder is decoder
    other.push(sentence[: len(sentence) // 2])
    assert other._in_utterance
    del other
    again = PhoneRecognizer()
    assert again._decoder is decoder and recognizer.DECODERS.made == 1
    np.testing.assert_array_equal(labels(again, known.audio), expected)


def test_recognised_phones_follow_the_spoken_ones(known):
    classes, confidence = recognize(known.audio)
    assert len(classes) == -(-len(known.audio) // audio.HOP) and len(confidence) == len(classes)
    truth = phonetic.script_rows(known.phonemes, 0, len(classes))
    assert (groups(classes) == groups(truth)).mean() > 0.7  # pause, vowel or consonant
    assert (classes == truth).mean() > 0.35  # the class itself, out of 36
    # most of the seven bilabials (six /p/, the /m/ of "home") are heard as bilabials
    closures = np.flatnonzero(np.diff(np.r_[0, truth == P, 0]) == 1)
    ends = np.flatnonzero(np.diff(np.r_[0, truth == P, 0]) == -1)
    found = [(classes[max(0, a - 3) : b + 3] == P).any() for a, b in zip(closures, ends, strict=True)]
    assert len(found) == 7 and np.mean(found) >= 0.6, found
    assert ((confidence > 0) & (confidence <= 1)).all()


def test_labels_do_not_depend_on_how_the_audio_is_chunked(known):
    whole = recognize(known.audio)
    for chunk in (160, 333, 4000):
        rec = PhoneRecognizer()
        parts = [rec.push(known.audio[i : i + chunk]) for i in range(0, len(known.audio), chunk)]
        parts.append(rec.finish())
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), whole[0])
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), whole[1])


@pytest.mark.parametrize("delay_ms", [40, 80, 120])
def test_rows_come_out_a_fixed_delay_behind_the_newest_audio(known, delay_ms):
    rec = PhoneRecognizer(delay_ms)
    step = audio.SAMPLES_PER_FRAME
    out = 0
    for i in range(0, len(known.audio) - step, step):
        out += len(rec.push(known.audio[i : i + step])[0])
        heard_rows = (i + step) // audio.HOP
        # every row the delay allows is out; more only when a pause ended an utterance (its final
        # decode labels the rows held back at once), never a row of audio not yet heard
        assert max(0, heard_rows - delay_ms // 10) <= out <= heard_rows
    assert rec.rows_out == out


def test_silence_is_rest_and_the_search_restarts_in_pauses(known):
    quiet = np.zeros(3 * audio.SAMPLE_RATE, np.float32)
    rec = PhoneRecognizer()
    classes = np.concatenate([rec.push(quiet)[0], rec.finish()[0]])
    assert (classes == phoneset.REST).mean() > 0.95
    # speech after a long pause is labelled as well as speech alone (the pause ended an utterance)
    pause = np.zeros(2 * audio.SAMPLE_RATE, np.float32)
    long_classes, _ = recognize(np.concatenate([known.audio, pause, known.audio]))
    alone, _ = recognize(known.audio)
    second = long_classes[len(known.audio) // audio.HOP + len(pause) // audio.HOP :][: len(alone)]
    assert (second == alone[: len(second)]).mean() > 0.8


def test_delay_must_be_whole_rows():
    with pytest.raises(ValueError, match="multiple of 10"):
        PhoneRecognizer(delay_ms=85)
