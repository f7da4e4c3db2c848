"""The generation core shared by ``generate`` and live sessions."""

import numpy as np
import pytest

from sonic_rt import audio
from sonic_rt.animator import Animator, frames_for_samples
from sonic_rt.config import MotionParams, VideoParams
from sonic_rt.motion import vector

FAST = MotionParams(block_frames=8)


@pytest.fixture(scope="module")
def speech(sentence) -> np.ndarray:
    return sentence


def animate(identity, shipped, samples, chunk=None, total=None, render=False, **video):
    anim = Animator(identity, *shipped, FAST, VideoParams(**video), render=render)
    chunk = chunk or len(samples)
    frames = []
    for i in range(0, len(samples), chunk):
        frames += anim.push(samples[i : i + chunk])
    return frames + anim.finish(total), anim


def test_frames_cover_the_audio_and_sit_on_its_timeline(astronaut_identity, shipped, speech):
    frames, anim = animate(astronaut_identity, shipped, speech, chunk=320)
    assert len(frames) == frames_for_samples(len(speech), 25) == -(-len(speech) // audio.SAMPLES_PER_FRAME)
    assert [f.index for f in frames] == list(range(len(frames)))
    assert frames[10].time == pytest.approx(0.4)
    assert all(f.image is None for f in frames)
    assert anim.timings_ms["motion"] > 0 and anim.timings_ms["features"] > 0


def test_chunking_does_not_change_the_motion(astronaut_identity, shipped, speech):
    whole, _ = animate(astronaut_identity, shipped, speech)
    for chunk in (320, 4321):
        parts, _ = animate(astronaut_identity, shipped, speech, chunk=chunk)
        np.testing.assert_array_equal(np.stack([f.motion for f in parts]), np.stack([f.motion for f in whole]))


def test_mouth_moves_with_speech(astronaut_identity, shipped, speech):
    frames, _ = animate(astronaut_identity, shipped, speech)
    # the photo's own mouth is open (a toothy smile): closing it is mouth_close, opening further jaw_open
    m = np.stack([f.motion for f in frames])
    opening = m[:, vector.INDEX["jaw_open"]] - m[:, vector.INDEX["mouth_close"]]
    assert opening.max() - opening.min() > 0.5 and opening.std() > 0.1


def test_a_longer_total_idles_after_the_audio(astronaut_identity, shipped, speech):
    n = frames_for_samples(len(speech), 25)
    frames, _ = animate(astronaut_identity, shipped, speech, total=n + 50)
    assert len(frames) == n + 50
    tail = np.array([f.motion[vector.INDEX["jaw_open"]] for f in frames[-25:]])
    assert tail.max() < 0.15


def test_lip_sync_offset_shifts_the_motion_by_whole_frames(astronaut_identity, shipped, speech):
    base, _ = animate(astronaut_identity, shipped, speech, lip_sync_offset_ms=0.0)
    early, anim = animate(astronaut_identity, shipped, speech, lip_sync_offset_ms=-80.0)
    assert len(early) == len(base)
    # the last model block is longer when it must reach two frames further, so compare before it
    n = len(base) - 10
    shifted = np.stack([f.motion for f in early[:n]])
    np.testing.assert_array_equal(shifted, np.stack([f.motion for f in base[2 : n + 2]]))
    assert anim.latency_ms == Animator(astronaut_identity, *shipped, FAST).latency_ms + 40


def test_other_frame_rates(astronaut_identity, shipped, speech):
    frames, _ = animate(astronaut_identity, shipped, speech, fps=30)
    assert len(frames) == -(-len(speech) * 30 // audio.SAMPLE_RATE)
    assert frames[30].time == pytest.approx(1.0)


def test_renders_frames_of_the_portrait(astronaut_identity, shipped, speech):
    frames, anim = animate(astronaut_identity, shipped, speech[: audio.SAMPLE_RATE], render=True)
    size = astronaut_identity.out_size
    assert all(f.image.shape == (size, size, 3) and f.image.dtype == np.uint8 for f in frames)
    assert anim.timings_ms["render"] > 0
    assert not np.array_equal(frames[5].image, frames[20].image)


def _opening(frames) -> np.ndarray:
    m = np.stack([f.motion for f in frames])
    return m[:, vector.INDEX["jaw_open"]] - m[:, vector.INDEX["mouth_close"]]


def test_interrupt_drops_the_lookahead_and_goes_to_rest(astronaut_identity, shipped, speech):
    live = MotionParams(block_frames=2)
    anim = Animator(astronaut_identity, *shipped, live, render=False)
    cut = int(0.9 * audio.SAMPLE_RATE)  # mid-sentence
    before = anim.push(speech[:cut])
    assert anim.audio_position == cut
    anim.interrupt()
    # audio now lands after the last model frame generated: the look-ahead was dropped
    assert anim.audio_position == anim._motion.frames_out * audio.SAMPLES_PER_FRAME
    assert anim.audio_position < cut
    after = []
    for _ in range(20):
        after += anim.push(np.zeros(audio.SAMPLES_PER_FRAME, np.float32))
    assert [f.index for f in before + after] == list(range(len(before) + len(after)))
    rest = _opening(Animator(astronaut_identity, *shipped, live, render=False).push(np.zeros(16000, np.float32)))
    opening = _opening(after)
    # the mouth was moving with speech; within two frames it is back at rest, and the step there
    # is no larger than the steps speech itself makes from frame to frame
    assert np.ptp(_opening(before)) > 0.5
    assert np.abs(opening[2:] - rest.mean()).max() < 0.1
    cut_step = np.abs(np.diff(_opening(before[-1:] + after[:3]))).max()
    assert cut_step <= np.abs(np.diff(_opening(before))).max()


def test_interrupt_with_nothing_pending_changes_nothing(astronaut_identity, shipped):
    anim = Animator(astronaut_identity, *shipped, MotionParams(block_frames=2), render=False)
    anim.interrupt()
    assert anim.audio_position == 0
    frames = anim.push(np.zeros(audio.SAMPLE_RATE, np.float32))
    assert frames[0].index == 0 and len(frames) > 15


def test_lookahead_is_bounded_with_the_recogniser_in_the_path(astronaut_identity, shipped, speech):
    """Audio after time T changes no frame whose audio, look-ahead included, ended before T: the
    phone recogniser (a fixed delay behind the audio) is inside that bound."""
    live = MotionParams(block_frames=2)
    cut = int(1.6 * audio.SAMPLE_RATE)
    other = speech.copy()
    other[cut:] = speech[::-1][: len(speech) - cut]

    def run(signal):
        anim = Animator(astronaut_identity, *shipped, live, VideoParams(lip_sync_offset_ms=0.0), render=False)
        frames = []
        for i in range(0, len(signal), 320):  # 20 ms chunks, as a microphone sends them
            frames += anim.push(signal[i : i + 320])
        return np.stack([f.motion for f in frames + anim.finish()]), anim

    a, anim = run(speech)
    b, _ = run(other)
    assert anim.latency_ms == 80 + 120  # the block and the look-ahead: 80 ms of phones after 40 ms of rows
    # a block is made once the audio to its end plus the look-ahead is in
    lookahead_frames = shipped[0].lookahead_ms * audio.FPS // 1000
    safe = (cut // audio.SAMPLES_PER_FRAME - lookahead_frames) // live.block_frames * live.block_frames
    np.testing.assert_array_equal(a[:safe], b[:safe])
    assert not np.array_equal(a[safe + 4 :], b[safe + 4 :])


def test_a_script_is_the_phonetic_track(astronaut_identity, shipped):
    """Speech whose phonemes are given needs no recognising: the mouth follows the script, the
    same for any chunking, and it differs from the recognised track."""
    tts = pytest.importorskip("sonic_rt.audio.tts")
    from sonic_rt.audio.phonetic import script_slice

    try:
        spoken = tts.synthesize("Bob and Mum moved the blue boat.", voice="en-us")
    except tts.TTSUnavailable as err:
        pytest.skip(str(err))

    def run(script: bool, chunk: int):
        anim = Animator(astronaut_identity, *shipped, FAST, render=False)
        frames = []
        for i in range(0, len(spoken.audio), chunk):
            piece = spoken.audio[i : i + chunk]
            t0 = i / audio.SAMPLE_RATE
            part = script_slice(spoken.phonemes, t0, t0 + len(piece) / audio.SAMPLE_RATE) if script else None
            frames += anim.push(piece, part)
        return np.stack([f.motion for f in frames + anim.finish()]), anim

    given, anim = run(True, len(spoken.audio))
    assert anim.timings_ms["phones"] < 50  # nothing was recognised
    np.testing.assert_allclose(run(True, 3200)[0], given, atol=1e-5)
    heard, _ = run(False, 3200)
    assert given.shape == heard.shape and not np.allclose(given, heard)
