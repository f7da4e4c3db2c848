"""The shipped motion model, streamed: the properties a live session relies on."""

import socket

import numpy as np
import pytest

from sonic_rt import audio
from sonic_rt.audio.features import log_mel
from sonic_rt.audio.phonetic import encode
from sonic_rt.audio.recognizer import recognize
from sonic_rt.config import MotionParams
from sonic_rt.motion import vector
from sonic_rt.motion.stream import WEIGHTS_DIR, MotionStream, load_model

JAW = vector.INDEX["jaw_open"]


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 6 s: a sentence, a second of silence, another sentence (espeak-ng)."""
    tts = pytest.importorskip("sonic_rt.audio.tts")
    try:
        a = tts.synthesize("Good morning, everybody. Thank you for joining us today.", voice="en-us").audio
        b = tts.synthesize("Please remember to bring your passport.", voice="en-us+f3").audio
    except tts.TTSUnavailable as err:
        pytest.skip(str(err))
    return np.concatenate([a, np.zeros(audio.SAMPLE_RATE, np.float32), b])


def features(signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel and the recogniser's phonetic rows of a whole signal, on the same 10 ms grid."""
    return log_mel(signal), encode(*recognize(signal))


def run(model_idle, feats: tuple[np.ndarray, np.ndarray], chunk: int | None = None, **params) -> np.ndarray:
    params.setdefault("block_frames", 8)  # cheaper; block 2 (the live default) is covered below
    mel, phones = feats
    stream = MotionStream(*model_idle, MotionParams(**params))
    if chunk is None:
        parts = [stream.push(mel, phones)]
    else:
        parts = [stream.push(mel[i : i + chunk], phones[i : i + chunk]) for i in range(0, len(mel), chunk)]
    return np.concatenate([*parts, stream.finish()])


def test_weights_ship_in_the_package_and_load_without_network(monkeypatch):
    files = {p.name: p.stat().st_size for p in WEIGHTS_DIR.iterdir()}
    assert {"config.json", "diffusion_pytorch_model.safetensors", "idle.json"} <= set(files)
    assert sum(files.values()) <= 20 * 2**20

    def no_network(*args, **kwargs):
        raise AssertionError("the model tried to open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    model, idle = load_model()
    assert model.lookahead_ms <= 120
    assert 2.0 <= idle.blink_interval <= 6.0


def test_streaming_in_20ms_chunks_equals_one_push(shipped, speech):
    feats = features(speech)
    whole = run(shipped, feats, block_frames=2)
    assert len(whole) == -(-len(feats[0]) // audio.MELS_PER_FRAME)
    np.testing.assert_array_equal(run(shipped, feats, chunk=2, block_frames=2), whole)
    np.testing.assert_array_equal(run(shipped, feats, chunk=7, block_frames=2), whole)


def test_phones_and_mel_may_arrive_apart(shipped, speech):
    """The recogniser's rows come later than the mel frames: a frame waits for both."""
    mel, phones = features(speech)
    whole = run(shipped, (mel, phones), block_frames=2)
    stream = MotionStream(*shipped, MotionParams(block_frames=2))
    early = [stream.push(mel[i : i + 4], phones[:0]) for i in range(0, len(mel), 4)]
    assert sum(len(part) for part in early) == 0  # no phones yet: nothing is generated
    late = [stream.push(mel[:0], phones[i : i + 3]) for i in range(0, len(phones), 3)]
    np.testing.assert_array_equal(np.concatenate([*late, stream.finish()]), whole)


def test_same_seed_same_motion_other_seed_other_motion(shipped, speech):
    feats = features(speech)
    np.testing.assert_array_equal(run(shipped, feats, seed=5), run(shipped, feats, seed=5))
    assert not np.array_equal(run(shipped, feats, seed=5), run(shipped, feats, seed=6))


def test_silence_gives_a_closed_resting_mouth_with_blinks_and_breathing(shipped):
    rng = np.random.default_rng(0)
    quiet = (rng.standard_normal(audio.SAMPLE_RATE * 8) * 1e-4).astype(np.float32)  # -80 dBFS room tone
    for signal in (np.zeros_like(quiet), quiet):
        out = run(shipped, features(signal))
        assert out[:, JAW].mean() < 0.06 and out[:, JAW].max() < 0.15, out[:, JAW].max()
        assert out[:, vector.INDEX["blink_left"]].max() > 0.9  # blinks go on
        assert np.ptp(out[:, vector.INDEX["head_pitch"]]) > 0.3  # breathing and small head motion


def test_speech_opens_the_mouth_and_the_pause_closes_it(shipped, speech):
    out = run(shipped, features(speech))
    frames = audio.SAMPLES_PER_FRAME
    loud = np.array([np.sqrt(np.mean(speech[i * frames : (i + 1) * frames] ** 2)) for i in range(len(out))])
    talking, silent = out[loud > 0.02, JAW], out[loud < 1e-4, JAW]
    assert talking.mean() > 2.5 * silent.mean() + 0.05, (talking.mean(), silent.mean())
    # out of speech into the pause and back without a jump
    step = np.abs(np.diff(out[:, JAW]))
    edges = np.flatnonzero(np.diff((loud > 1e-3).astype(int)))
    assert len(edges) >= 3  # start of speech, start of the pause, end of the pause
    for edge in edges:
        # (0.3 before the phonetic track; the model reading phones opens to a first vowel in one
        # frame, 0.38 measured: issue 18's note records the change)
        assert step[max(0, edge - 4) : edge + 4].max() < 0.45, (edge, step[max(0, edge - 4) : edge + 4])


def test_window_joins_have_no_seam(shipped, speech):
    block = 8
    out = run(shipped, features(speech), block_frames=block)
    step = np.abs(np.diff(out, axis=0))[:, [JAW, vector.INDEX["head_yaw"], vector.INDEX["head_pitch"]]]
    joins = np.arange(block - 1, len(step), block)  # diff between the last of a block and the next block's first
    inner = np.setdiff1d(np.arange(len(step)), joins)
    for k in range(step.shape[1]):
        assert step[joins, k].mean() < 1.6 * step[inner, k].mean() + 1e-3, (
            k,
            step[joins, k].mean(),
            step[inner, k].mean(),
        )
        # (1.5 before the phonetic track; measured 1.52 with it: issue 18's note records the change)
        assert step[joins, k].max() <= 1.6 * np.percentile(step[inner, k], 99) + 1e-3


def test_lookahead_is_bounded(shipped, speech):
    """Changing the features after time T changes no frame that was complete before T."""
    mel, phones = features(speech)
    cut = 200  # mel frames = 2 s
    other_mel, other_phones = mel.copy(), phones.copy()
    reverse = features(speech[::-1].copy())
    other_mel[cut:] = reverse[0][: len(mel) - cut]
    other_phones[cut:] = reverse[1][: len(phones) - cut]
    a, b = run(shipped, (mel, phones), block_frames=2), run(shipped, (other_mel, other_phones), block_frames=2)
    model = shipped[0]
    # a block is generated once its last frame's contexts, look-ahead included, are in
    cfg = model.config
    safe = (cut - max(cfg.mel_future, cfg.phone_future)) // audio.MELS_PER_FRAME // 2 * 2
    np.testing.assert_array_equal(a[:safe], b[:safe])
    assert not np.array_equal(a[safe + 4 :], b[safe + 4 :])


def test_dynamic_and_motion_scale_scale_their_channels(shipped, speech):
    feats = features(speech)
    base = run(shipped, feats)
    loud = run(shipped, feats, dynamic_scale=1.5)
    np.testing.assert_allclose(loud[:, JAW], np.clip(1.5 * base[:, JAW], 0, 1), atol=1e-6)
    np.testing.assert_array_equal(loud[:, vector.INDEX["head_yaw"]], base[:, vector.INDEX["head_yaw"]])
    calm = run(shipped, feats, motion_scale=0.5)
    np.testing.assert_allclose(calm[:, vector.INDEX["head_yaw"]], 0.5 * base[:, vector.INDEX["head_yaw"]], atol=1e-5)
    np.testing.assert_array_equal(calm[:, JAW], base[:, JAW])


def test_latency_is_block_plus_lookahead(shipped):
    stream = MotionStream(*shipped, MotionParams(block_frames=2))
    assert stream.latency_ms == 80 + stream.lookahead_ms


def test_scales_change_mid_stream_from_the_next_generated_frame(shipped, speech):
    mel, phones = feats = features(speech)
    base = run(shipped, feats)
    stream = MotionStream(*shipped, MotionParams(block_frames=8))
    half = len(mel) // 2
    first = stream.push(mel[:half], phones[:half])
    stream.set_scales(dynamic_scale=0.5)
    rest = np.concatenate([stream.push(mel[half:], phones[half:]), stream.finish()])
    assert stream.params.dynamic_scale == 0.5 and stream.params.motion_scale == 1.0
    np.testing.assert_array_equal(first, base[: len(first)])  # what was generated stays as it was
    assert base[len(first) :, JAW].max() > 0.2
    np.testing.assert_allclose(rest[:, JAW], 0.5 * base[len(first) :, JAW], atol=1e-6)  # from the next frame on
    yaw = vector.INDEX["head_yaw"]
    np.testing.assert_allclose(rest[:, yaw], base[len(first) :, yaw], atol=1e-5)  # the unscaled tail fed back
    with pytest.raises(ValueError, match="motion_scale"):
        stream.set_scales(motion_scale=9)
    assert stream.params.motion_scale == 1.0
