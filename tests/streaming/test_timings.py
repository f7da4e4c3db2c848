"""A client's timings on the session's timeline: placed, cut into the audio, refused, interrupted;
and what they do to the face."""

import numpy as np
import pytest

from sonic_rt import audio
from sonic_rt.audio.timings import BadTimings, Mark, parse
from sonic_rt.audio.visemes import NAMES
from sonic_rt.motion import vector
from streaming.timings import TimingsTrack
from tests.streaming.test_session import chunks, make_session

SR = audio.SAMPLE_RATE


def ipa(*spec):
    """(phone, start_ms, end_ms) ... -> marks."""
    return parse("ipa", [{"phone": ph, "start_ms": a, "end_ms": b} for ph, a, b in spec])


def test_timings_placed_where_the_audio_ends_cut_the_audio_that_comes():
    track = TimingsTrack()
    assert track.split(np.zeros(SR // 10, np.float32))[0][1] is None  # 100 ms, no timings: recognised
    track.place(ipa(("p", 50, 150)))  # from 100 ms of the client's audio: 150..250 ms
    parts = track.split(np.zeros(SR // 5, np.float32))  # 100..300 ms
    assert [len(p) for p, _ in parts] == [800, 1600, 800]
    assert [m is None for _, m in parts] == [True, False, True]
    (mark,) = parts[1][1]
    assert (mark.classes, mark.start, mark.end) == (("p",), pytest.approx(0.0), pytest.approx(0.1))


def test_refused_timings_change_nothing():
    track = TimingsTrack()
    track.split(np.zeros(SR // 2, np.float32))  # 500 ms received
    with pytest.raises(BadTimings, match="already arrived"):
        track.place(ipa(("p", 0, 100)), offset=0.2)  # for audio already here: backwards
    track.place(ipa(("p", 0, 100)))  # 500..600 ms
    with pytest.raises(BadTimings, match="must not overlap"):
        track.place(ipa(("a", 0, 100)), offset=0.55)
    parts = track.split(np.zeros(SR // 5, np.float32))
    assert [m is None for _, m in parts] == [False, True]  # only the first timings


def test_an_open_mark_ends_at_the_next_timings_or_the_utterance():
    track = TimingsTrack()
    track.place(parse("polly", [{"time": 0, "type": "viseme", "value": "p"}]))  # no end: open
    track.place(parse("polly", [{"time": 0, "type": "viseme", "value": "a"}]), offset=0.3)
    parts = track.split(np.zeros(SR // 2, np.float32))
    assert len(parts) == 1 and [m.classes for m in parts[0][1]] == [("p",), ("a",)]
    assert parts[0][1][0].end == pytest.approx(0.3)
    track.end_utterance()  # the open /a/ ends with the audio: nothing refused
    assert track.split(np.zeros(160, np.float32))[0][1] is None


def test_timings_past_the_end_of_the_utterance_are_dropped_and_refused():
    track = TimingsTrack()
    track.place(ipa(("p", 0, 100), ("a", 100, 900)))
    track.split(np.zeros(SR // 2, np.float32))
    with pytest.raises(BadTimings, match="past the end"):
        track.end_utterance()
    assert track.split(np.zeros(SR // 2, np.float32))[0][1] is None  # dropped: the next audio is recognised


def test_an_interrupt_drops_the_timings_of_audio_not_yet_received():
    track = TimingsTrack()
    track.place(ipa(("p", 0, 2000)))
    track.split(np.zeros(SR // 2, np.float32))
    track.clear()
    track.place(ipa(("u", 0, 500)))  # from where the audio received ends (500 ms): not shifted back
    parts = track.split(np.zeros(SR // 2, np.float32))
    assert [m.classes for m in parts[0][1]] == [("u",)] and parts[0][1][0].start == pytest.approx(0.0)


def frames_of(session, n):
    return [session.next_frame() for _ in range(n)]


def opening(frames) -> np.ndarray:
    m = np.stack([f.motion for f in frames])
    return m[:, vector.INDEX["jaw_open"]] - m[:, vector.INDEX["mouth_close"]]


def run_with(identity, shipped, speech, marks):
    session = make_session(identity, shipped)
    if marks:
        session.place_timings(marks)
    for piece in chunks(speech):
        session.push_audio(piece)
    session.flush()
    return frames_of(session, -(-len(speech) // audio.SAMPLES_PER_FRAME) + 4)


def test_given_timings_drive_the_mouth_a_p_closes_it(astronaut_identity, shipped, sentence):
    n = len(sentence) * 1000 // SR
    lips = run_with(astronaut_identity, shipped, sentence, ipa(("ɑ", 0, 600), ("m", 600, 1400), ("ɑ", 1400, n)))
    vowel = run_with(astronaut_identity, shipped, sentence, ipa(("ɑ", 0, n)))
    inside = [i for i, f in enumerate(lips) if f.source is not None and 0.75 <= f.source < 1.25]
    assert len(inside) >= 10
    assert opening(lips)[inside].mean() < opening(vowel)[inside].mean() - 0.1
    # the viseme stream says the same: PP inside the /m/, aa around it
    pp = np.array([lips[i].visemes[NAMES.index("PP")] for i in inside])
    assert (pp > 0.99).mean() > 0.8
    for f in lips:
        assert f.visemes.sum() == pytest.approx(1.0, abs=1e-5)


def test_timings_stay_right_across_an_interrupt(astronaut_identity, shipped, sentence):
    session = make_session(astronaut_identity, shipped)
    session.place_timings(ipa(("m", 0, 5000)))  # for 5 s of audio the client will not send: barge-in
    for piece in chunks(sentence[: SR // 2]):
        session.push_audio(piece)
    frames_of(session, 6)
    session.interrupt()
    received = len(sentence[: SR // 2]) / SR
    session.place_timings(ipa(("u", 0, 1000)))  # the new answer's timings, where its audio will start
    for piece in chunks(sentence[: SR]):
        session.push_audio(piece)
    session.flush()
    after = frames_of(session, 40)
    new = [f for f in after if f.source is not None and received + 0.2 <= f.source < received + 0.8]
    assert len(new) >= 10
    assert all(f.visemes[NAMES.index("ou")] > 0.99 for f in new)  # the new timings, not the old /m/


def test_a_refused_flush_still_ends_the_utterance(astronaut_identity, shipped, sentence):
    session = make_session(astronaut_identity, shipped)
    session.place_timings(ipa(("ɑ", 0, 10_000)))
    for piece in chunks(sentence):
        session.push_audio(piece)
    with pytest.raises(BadTimings, match="past the end"):
        session.flush()
    frames = frames_of(session, -(-len(sentence) // audio.SAMPLES_PER_FRAME) + 2)
    assert any(f.source is not None and f.source > len(sentence) / SR - 0.1 for f in frames)  # nothing lost


def test_marks_with_times_are_what_a_script_is(astronaut_identity, shipped):
    # the phonetic track reads a Mark as it reads an espeak phoneme: same rows for the same shape
    from sonic_rt.audio.phonetic import script_rows
    from sonic_rt.audio.tts import Phoneme

    a = script_rows([Phoneme("m", 0.0, 0.1), Phoneme("A:", 0.1, 0.3)], 0, 30)
    b = script_rows([Mark(("p",), 0.0, 0.1), Mark(("ɑ",), 0.1, 0.3)], 0, 30)
    assert (a == b).all()
