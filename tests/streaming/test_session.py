"""The live core: audio chunks in, frames with their audio out, without a network or a clock."""

import numpy as np
import pytest

from sonic_rt import audio
from sonic_rt.animator import Animator
from sonic_rt.audio.recognizer import DECODERS
from sonic_rt.config import MotionParams, VideoParams
from sonic_rt.errors import BadAudioChunk, BadSampleRate
from sonic_rt.motion import vector
from streaming.intake import AudioOverflow
from streaming.session import Session, stock
from streaming.vad import MODELS, VoiceActivity

SPF = audio.SAMPLES_PER_FRAME


def make_session(identity, shipped, vad=None, **kwargs) -> Session:
    animator = Animator(identity, *shipped, MotionParams(block_frames=2), VideoParams(), render=False)
    return Session(animator, vad, **kwargs)


def chunks(samples: np.ndarray, ms: int = 20):
    step = audio.SAMPLE_RATE * ms // 1000
    return [samples[i : i + step] for i in range(0, len(samples), step)]


def opening(frames) -> np.ndarray:
    m = np.stack([f.motion for f in frames])
    return m[:, vector.INDEX["jaw_open"]] - m[:, vector.INDEX["mouth_close"]]


def test_sessions_started_after_others_ended_or_after_a_stock_make_no_slow_part(astronaut_identity, shipped):
    stock(2)
    made = DECODERS.made, MODELS.made
    for _ in range(2):  # two at once, twice
        sessions = [make_session(astronaut_identity, shipped, VoiceActivity()) for _ in range(2)]
        for session in sessions:
            session.next_frame()
        del sessions, session
    assert (DECODERS.made, MODELS.made) == made  # what starting a session held the GIL for, made once


def test_without_audio_the_face_idles_at_the_frame_rate(astronaut_identity, shipped):
    session = make_session(astronaut_identity, shipped)
    frames = [session.next_frame() for _ in range(30)]
    assert [f.index for f in frames] == list(range(30))
    assert frames[25].pts == pytest.approx(1.0)
    assert all(f.source is None and not f.speech for f in frames)
    assert all(len(f.audio) == SPF and not f.audio.any() for f in frames)
    assert frames[0].image.shape == (512, 512, 3) and frames[0].image.dtype == np.uint8
    assert np.ptp(opening(frames)) < 0.2  # mouth at rest
    assert session.filled_ms >= 30 * 40


def test_frames_carry_exactly_the_audio_they_show(astronaut_identity, shipped, sentence):
    session = make_session(astronaut_identity, shipped)
    for piece in chunks(sentence):
        session.push_audio(piece)
    session.flush()
    n = -(-len(sentence) // SPF)
    frames = [session.next_frame() for _ in range(n)]
    played = np.concatenate([f.audio for f in frames])
    np.testing.assert_array_equal(played[: len(sentence)], sentence)
    for f in frames[::7]:
        assert f.source == pytest.approx(f.pts)
    assert np.ptp(opening(frames)) > 0.5  # the mouth moved with the speech
    assert session.filled_ms == 0  # the flush needed no filling in from next_frame


def test_speech_the_server_made_is_not_counted_as_client_audio(astronaut_identity, shipped, sentence):
    session = make_session(astronaut_identity, shipped)
    short = sentence[: SPF * 10]
    session.push_audio(short, client=False)  # a ``say``
    for piece in chunks(short):
        session.push_audio(piece)
    session.flush()
    frames = [session.next_frame() for _ in range(20)]
    assert all(f.source is None for f in frames[:10])
    assert [f.source for f in frames[10:]] == pytest.approx([f.pts - 0.4 for f in frames[10:]])  # from 0 s


def test_other_rates_and_channels_are_resampled(astronaut_identity, shipped, sentence):
    stereo48 = np.repeat(sentence[:, None], 2, axis=1).repeat(3, axis=0)  # crude 48 kHz stereo
    pcm = np.round(stereo48 * 32767).astype(np.int16)
    session = make_session(astronaut_identity, shipped)
    for piece in np.array_split(pcm, len(pcm) // 960):  # 20 ms of 48 kHz, as WebRTC delivers it
        session.push_audio(piece, 48000, 2)
    session.flush()
    frames = [session.next_frame() for _ in range(len(sentence) // SPF)]
    played = np.concatenate([f.audio for f in frames])
    assert abs(len(played) - len(sentence)) <= SPF
    assert np.corrcoef(played[2000:30000], sentence[2000:30000])[0, 1] > 0.9


def test_motion_does_not_depend_on_chunk_size(astronaut_identity, shipped, sentence):
    results = []
    for ms in (10, 100):
        session = make_session(astronaut_identity, shipped)
        for piece in chunks(sentence, ms):
            session.push_audio(piece)
        session.flush()
        results.append(np.stack([session.next_frame().motion for _ in range(50)]))
    np.testing.assert_array_equal(*results)


def test_late_audio_starts_after_the_silence_filled_in(astronaut_identity, shipped, sentence):
    session = make_session(astronaut_identity, shipped)
    idle = [session.next_frame() for _ in range(10)]  # nobody spoke yet
    for piece in chunks(sentence):
        session.push_audio(piece)
    session.flush()
    frames = [session.next_frame() for _ in range(80)]
    first = next(f for f in frames if f.source is not None)
    assert first.source == 0.0 and first.index >= len(idle)
    played = np.concatenate([f.audio for f in frames[first.index - len(idle) :]])
    np.testing.assert_array_equal(played[: len(sentence)], sentence[: len(played)])


def test_audio_arriving_in_real_time_after_idling_plays_without_a_gap(astronaut_identity, shipped, sentence):
    session = make_session(astronaut_identity, shipped)
    frames = [session.next_frame() for _ in range(10)]  # idle: silence filled in
    pieces = chunks(sentence)  # 20 ms each: two arrive per frame, as from a live client, the first
    for i in range(-1, len(pieces), 2):  # one just before a frame is due
        for piece in pieces[max(i, 0) : i + 2]:
            session.push_audio(piece)
        frames.append(session.next_frame())
    session.flush()
    frames += [session.next_frame() for _ in range(10)]
    shown = [f for f in frames if f.source is not None]
    assert [f.source for f in shown] == pytest.approx([0.04 * k for k in range(len(shown))])  # no silence inside
    played = np.concatenate([f.audio for f in shown])
    np.testing.assert_array_equal(played[: len(sentence)], sentence[: len(played)])


def test_interrupt_drops_queued_audio_and_returns_to_rest(astronaut_identity, shipped, sentence):
    session = make_session(astronaut_identity, shipped)
    for piece in chunks(np.concatenate([sentence, sentence])):
        session.push_audio(piece)
    before = [session.next_frame() for _ in range(20)]  # mid-sentence
    assert session.backlog_ms > 1000
    session.interrupt()
    assert session.backlog_ms == 0
    after = [session.next_frame() for _ in range(10)]
    assert [f.index for f in before + after] == list(range(30))
    assert all(not f.audio.any() and f.source is None for f in after)  # no queued speech plays
    rest = opening([make_session(astronaut_identity, shipped).next_frame() for _ in range(10)]).mean()
    assert np.abs(opening(after)[2:] - rest).max() < 0.1
    # the session carries on: new speech after the interrupt plays from its start
    for piece in chunks(sentence):
        session.push_audio(piece)
    session.flush()
    again = [session.next_frame() for _ in range(40)]
    first = next(f for f in again if f.source is not None)
    assert first.source == pytest.approx(2 * len(sentence) / audio.SAMPLE_RATE, abs=0.05)


def test_bad_chunks_are_refused_and_change_nothing(astronaut_identity, shipped, sentence):
    session = make_session(astronaut_identity, shipped, max_backlog_s=1.0)
    session.push_audio(sentence[:8000])
    with pytest.raises(BadAudioChunk):
        session.push_audio(np.full(320, np.nan, np.float32))
    with pytest.raises(BadAudioChunk):
        session.push_audio(sentence[:320].astype(np.float64))
    with pytest.raises(BadSampleRate):
        session.push_audio(sentence[:320], 4000)
    with pytest.raises(AudioOverflow) as err:
        session.push_audio(sentence[:16000])
    assert err.value.code == "audio_overflow"
    assert session.backlog_ms == 500
    session.push_audio(sentence[8000:16000])  # a good chunk is still taken
    assert session.backlog_ms == 1000


def test_voice_activity_marks_speech_and_skips_silence_that_only_adds_latency(astronaut_identity, shipped, sentence):
    session = make_session(astronaut_identity, shipped, VoiceActivity())
    signal = np.concatenate([np.zeros(8000, np.float32), sentence, np.zeros(16000, np.float32)])
    pieces, frames = chunks(signal), []
    for i in range(len(pieces)):  # every 20 ms, a chunk arrives ...
        arrived = [] if 5 <= i < 15 else pieces[5 : i + 1] if i == 15 else [pieces[i]]  # ... but for a 200 ms stall
        for piece in arrived:
            session.push_audio(piece)
            session.generate()
        if i % 2:
            frames.append(session.next_frame())  # one frame per 40 ms
    speech = [f for f in frames if f.speech]
    assert not frames[0].speech and speech and not frames[-1].speech
    assert session.skipped_ms > 0  # silence was skipped while frames were waiting, to cut latency ...
    assert np.allclose(np.diff([f.source for f in speech]), 0.04)  # ... never speech


@pytest.mark.parametrize("told", [True, False])
def test_latency_a_stalled_driver_gained_is_won_back_in_the_pauses(astronaut_identity, shipped, sentence, told):
    """The driver stalls 800 ms (more than a client's burst is let be) while the client's audio goes on
    arriving in real time: told (``fell_behind``), the session skips silence in the next pause until
    the latency is back; not told, 800 ms waiting looks like audio sent ahead on purpose, and stays."""
    session = make_session(astronaut_identity, shipped, VoiceActivity())
    pause = np.zeros(2 * audio.SAMPLE_RATE, np.float32)
    pieces, frames = chunks(np.concatenate([sentence, pause, sentence, pause])), []
    stall = range(40, 80)  # 20 ms chunks: 800 ms, inside the first sentence
    for i, piece in enumerate(pieces):
        session.push_audio(piece)  # every 20 ms, a chunk arrives ...
        session.generate()
        if i % 2 and i not in stall:
            frames.append(session.next_frame())  # ... and a frame goes out every 40 ms, but for the stall
        if i == stall.stop and told:
            session.fell_behind(0.8)
    if told:
        assert 700 <= session.skipped_ms <= 900  # what the stall added, and little more
        assert session.backlog_ms <= 150
    else:
        assert session.skipped_ms == 0 and session.backlog_ms >= 600
    speech = [f.source for f in frames if f.speech]
    assert np.allclose(np.diff(speech)[np.diff(speech) < 1], 0.04)  # speech is never skipped


def test_speech_that_arrives_late_mid_utterance_has_its_latency_won_back(astronaut_identity, shipped, sentence):
    """The client's audio stops coming for 800 ms mid-sentence (a network or server stall) and then
    arrives all at once, while frames go on being due: silence is filled in meanwhile, and the speech
    that comes late would wait 800 ms for good; the session skips silence in the next pause instead."""
    session = make_session(astronaut_identity, shipped, VoiceActivity())
    pause = np.zeros(2 * audio.SAMPLE_RATE, np.float32)
    pieces, frames = chunks(np.concatenate([sentence, pause, sentence, pause])), []
    held = range(40, 80)  # 20 ms chunks held back, then delivered together
    for i in range(len(pieces)):
        arrived = [] if i in held else pieces[held.start : i + 1] if i == held.stop else [pieces[i]]
        for piece in arrived:
            session.push_audio(piece)
            session.generate()
        if i % 2:
            frames.append(session.next_frame())
    assert session.filled_ms >= 700
    assert 700 <= session.skipped_ms <= 900 and session.backlog_ms <= 150
    speech = [f.source for f in frames if f.speech]
    assert np.allclose(np.diff(speech)[np.diff(speech) < 1], 0.04)  # speech is never skipped


class CountingVoice(VoiceActivity):
    """Voice activity that counts the samples it is asked to judge."""

    def __init__(self) -> None:
        super().__init__()
        self.judged = 0

    def push(self, samples: np.ndarray) -> bool:
        self.judged += len(samples)
        return super().push(samples)


def test_a_big_chunk_is_judged_and_animated_a_piece_at_a_time(astronaut_identity, shipped, sentence):
    """Seconds of audio in one chunk (a bursty client) do not make one long call into the session:
    pushing only queues it, and each ``generate`` animates just enough for the frames ahead (before,
    a 4 s chunk held the session for 280 ms and the next frame came too late)."""
    vad = CountingVoice()
    session = make_session(astronaut_identity, shipped, vad)
    burst = np.tile(sentence, 2)[: 4 * audio.SAMPLE_RATE]
    session.push_audio(burst)
    session.flush()
    assert vad.judged == 0 and session.backlog_ms == 4000
    session.generate()
    # the frames ahead plus what the model needs past them (block, look-ahead, lip-sync offset)
    ahead = 4 + int(session.animator.latency_ms) // 40
    assert vad.judged <= ahead * SPF and session.backlog_ms >= 4000 - ahead * 40
    frames = [session.next_frame() for _ in range(100)]
    assert vad.judged == len(burst) and session.backlog_ms == 0 and session.filled_ms == 0
    played = np.concatenate([f.audio for f in frames])
    np.testing.assert_array_equal(played, burst)  # all of it, in order, to the sample
    assert [f.source for f in frames[::10]] == pytest.approx([i * 0.4 for i in range(10)])
    assert any(f.speech for f in frames)


def test_speech_with_its_phonemes_is_animated_from_them(astronaut_identity, shipped):
    """The server's own speech (``say``) comes with its phonemes: they are the phonetic track, split
    with the audio into the session's pieces, and nothing is recognised."""
    tts = pytest.importorskip("sonic_rt.audio.tts")
    try:
        spoken = tts.synthesize("Bob and Mum moved the blue boat.", voice="en-us")
    except tts.TTSUnavailable as err:
        pytest.skip(str(err))
    given = make_session(astronaut_identity, shipped)
    given.push_audio(spoken.audio, client=False, script=spoken.phonemes)
    given.flush()
    heard = make_session(astronaut_identity, shipped)
    heard.push_audio(spoken.audio, client=False)
    heard.flush()
    n = -(-len(spoken.audio) // SPF)
    a = [given.next_frame() for _ in range(n)]
    b = [heard.next_frame() for _ in range(n)]
    assert given.animator.timings_ms["phones"] < 0.2 * heard.animator.timings_ms["phones"]
    assert not np.allclose(opening(a), opening(b))
    with pytest.raises(ValueError, match="16 kHz mono"):
        given.push_audio(spoken.audio, 48000, script=spoken.phonemes)
