"""The phonetic track: exact rows from the text-to-speech's phonemes, recognised rows otherwise."""

import numpy as np
import pytest

from sonic_rt import audio
from sonic_rt.audio import phoneset, phonetic
from sonic_rt.audio.tts import Phoneme

P, REST = phoneset.CLASS_INDEX["p"], phoneset.REST


@pytest.fixture(scope="module")
def spoken():
    tts = pytest.importorskip("sonic_rt.audio.tts")
    try:
        return tts.synthesize("Bob ate a big plum.", voice="en-us")
    except tts.TTSUnavailable as err:
        pytest.skip(str(err))


def test_features_carry_class_articulation_and_confidence():
    rows = phonetic.encode(np.array([P, REST]), np.array([0.5, 1.0]))
    assert rows.shape == (2, phonetic.FEATURES)
    assert rows[0, P] == 0.5 and rows[0, : phonetic.N_CLASSES].sum() == 0.5
    assert rows[0, -1] == 0.5 and rows[1, -1] == 1.0
    u = phoneset.CLASS_INDEX["u"]
    rounding = phonetic.N_CLASSES + 2  # jaw, width, rounding, upper, lower
    assert phonetic.encode(np.array([u]), np.ones(1))[0, rounding] == phoneset.TARGETS["u"][2]
    np.testing.assert_array_equal(phonetic.rest_rows(3), phonetic.encode(np.full(3, REST), np.ones(3)))


def test_script_rows_follow_espeak_timings_exactly():
    spec = [("_", 0.1), ("b", 0.06), ("A:", 0.2), ("p", 0.08), ("_", 0.1)]
    phonemes, t = [], 0.0
    for symbol, length in spec:
        phonemes.append(Phoneme(symbol, t, t + length))
        t += length
    rows = phonetic.script_rows(phonemes, 0, 60)
    a = phoneset.CLASS_INDEX["ɑ"]
    # rows are 10 ms; each takes the phoneme at its centre
    assert (rows[:10] == REST).all() and (rows[10:16] == P).all()
    # the voiceless /p/ is marked at its burst (0.36 s): its closure takes the 50 ms before it
    assert (rows[16:31] == a).all() and (rows[31:44] == P).all() and (rows[44:] == REST).all()


def test_a_known_sentence_gives_its_own_phonemes(spoken):
    rows = phonetic.script_rows(spoken.phonemes, 0, len(spoken.audio) // audio.HOP)
    for p in spoken.phonemes:
        mid = int((p.start + p.end) / 2 * 100)
        if p.symbol in ("b", "m"):  # "Bob", "big", "plum": sealed lips at every b and m
            assert rows[mid] == P, p
    assert (rows == P).sum() >= 4


def test_track_gives_script_rows_at_once_and_recognised_rows_after_the_delay(spoken):
    track = phonetic.PhoneticTrack(80)
    n = len(spoken.audio)
    first = track.push(spoken.audio, spoken.phonemes)  # the server's own speech: at once
    assert len(first) == n // audio.HOP
    assert (first[:, -1] == 1.0).all()
    mic = spoken.audio[: audio.SAMPLE_RATE]  # then a second of someone else's audio
    later = track.push(mic)
    assert len(later) <= audio.SAMPLE_RATE // audio.HOP - 8  # held back by the recogniser's delay
    rest = track.finish()
    assert track.rows_out == len(first) + len(later) + len(rest)
    assert track.rows_out >= (n + len(mic)) // audio.HOP


def test_script_then_recogniser_then_script_stays_in_order(spoken):
    track = phonetic.PhoneticTrack(80)
    pieces = [(spoken.audio, spoken.phonemes), (spoken.audio, None), (spoken.audio, spoken.phonemes)]
    rows = [track.push(samples, script) for samples, script in pieces]
    rows.append(track.finish())
    total = sum(len(r) for r in rows)
    assert abs(total - 3 * len(spoken.audio) / audio.HOP) <= 2
    # the third piece's rows are its own script's, from where the second piece ended
    third = phonetic.script_rows(spoken.phonemes, 0, len(spoken.audio) // audio.HOP)
    got = np.concatenate(rows)[-len(third) - 1 :]
    classes = got[:, : phonetic.N_CLASSES].argmax(axis=1)
    assert (classes[1:] == third[: len(classes) - 1]).mean() > 0.9 or (classes[:-1] == third).mean() > 0.9


def test_script_slice_counts_from_the_piece():
    phonemes = (Phoneme("a", 0.0, 0.5), Phoneme("p", 0.5, 0.6), Phoneme("_", 0.6, 1.0))
    piece = phonetic.script_slice(phonemes, 0.55, 0.7)
    assert [p.symbol for p in piece] == ["p", "_"]
    assert piece[0].start == pytest.approx(-0.05) and piece[1].end == pytest.approx(0.45)
