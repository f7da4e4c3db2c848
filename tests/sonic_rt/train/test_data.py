import numpy as np
import pytest
import torch

from sonic_rt import audio
from sonic_rt.audio import phoneset, phonetic
from sonic_rt.audio.features import SILENCE_LOG_MEL
from sonic_rt.motion import vector
from sonic_rt.motion.model import MotionDenoiser
from sonic_rt.train import data
from sonic_rt.train.loop import TrainConfig, WindowSampler, statistics, train
from sonic_rt.train.sentences import corpus

SOURCES = """local_name\trepo\tpath\tlicence\tduration\tres\tfps\tspeaker_note\tverified
videos/av2_a.mp4\tr\tp\tl\t1\t1\t25\tclip; sync d=0.89 @-3fr (null 0.10): audio about 0.1 s late\tyes
videos/av2_b.mp4\tr\tp\tl\t1\t1\t25\tclip; sync peak at -6/-7fr, so the audio may be offset\tlikely
videos/av2_c.mp4\tr\tp\tl\t1\t1\t25\tclip; sync d=0.55 @-1fr (null 0.08)\tyes
videos/av2_d.mp4\tr\tp\tl\t1\t1\t25\tclip; corr 0.31 @-3fr but speech/silence test inconclusive\tlikely
"""


def test_documented_lags_are_read_from_the_notes(tmp_path):
    (tmp_path / "SOURCES_more.tsv").write_text(SOURCES)
    assert data.documented_lags(tmp_path) == {"av2_a": -3, "av2_b": -6, "av2_c": -1}
    assert data.documented_lags(tmp_path / "missing") == {}


def test_padded_mel_puts_frame_f_context_at_row_4f():
    past, future = 8, 8
    sig = np.zeros(audio.SAMPLES_PER_FRAME * 10, np.float32)
    loud = slice(audio.SAMPLES_PER_FRAME * 5, audio.SAMPLES_PER_FRAME * 6)  # frame 5 is a 440 Hz tone
    sig[loud] = 0.5 * np.sin(2 * np.pi * 440 * np.arange(audio.SAMPLES_PER_FRAME) / audio.SAMPLE_RATE)
    mel = data.padded_mel(sig, 10, past, future)
    assert (mel[:past] == SILENCE_LOG_MEL).all()
    span = past + audio.MELS_PER_FRAME + future
    assert len(mel) >= 4 * 9 + span
    energy = mel.max(axis=1)
    own = slice(4 * 5 + past, 4 * 5 + past + audio.MELS_PER_FRAME)  # frame 5's own mel rows
    assert energy[own].max() > energy[past : past + 4 * 4].max() + 3
    assert energy[own][-1] > energy[past : past + 4 * 4].max() + 3  # a whole window inside the loud frame


@pytest.fixture(scope="module")
def synthetic_clips():
    pytest.importorskip("sonic_rt.audio.tts")
    from sonic_rt.audio.tts import TTSUnavailable

    spans = data.Spans(mel_past=8, mel_future=8, phone_past=8, phone_future=4, phone_delay_ms=80)
    try:
        return data.tts_clips(corpus(), 3, spans, 1, np.random.default_rng(0), data.PhoneCache(None))
    except TTSUnavailable as err:
        pytest.skip(str(err))


def test_synthetic_clips_supervise_the_mouth_only(synthetic_clips):
    for clip in synthetic_clips:
        assert clip.source == "tts" and len(clip.mels) == 2 and len(clip.phones) == 2
        assert clip.channel_mask[vector.INDEX["jaw_open"]] == 1.0
        assert clip.channel_mask[vector.INDEX["head_yaw"]] == 0.0
        assert clip.channel_mask[vector.INDEX["blink_left"]] == 0.0
        assert clip.motion[:, vector.INDEX["jaw_open"]].max() > 0.2  # it speaks
        assert len(clip.mels[0]) >= 4 * len(clip.motion) + 8
        assert len(clip.phones[0]) >= 4 * len(clip.motion) + 8 + 4
        exact, heard = clip.phones  # the clean version's phones are the script's: certain
        assert (exact[:, -1] == 1.0).all() and (heard[:, -1] < 1.0).any()


def test_padded_phones_put_frame_f_context_at_row_4f():
    rows = phonetic.encode(np.full(40, phoneset.CLASS_INDEX["p"]), np.ones(40))
    out = data.padded_phones(rows, 10, 8, 4)
    assert len(out) == 10 * 4 + 4 + 4 + 8
    np.testing.assert_array_equal(out[:8], phonetic.rest_rows(8))
    np.testing.assert_array_equal(out[8:48], rows)
    np.testing.assert_array_equal(out[48:], phonetic.rest_rows(len(out) - 48))


def test_phone_cache_keeps_the_recogniser_rows(tmp_path, sentence):
    cache = data.PhoneCache(tmp_path)
    first = cache(sentence, 80)
    assert len(list(tmp_path.iterdir())) == 1
    np.testing.assert_array_equal(cache(sentence, 80), first)
    assert len(list(tmp_path.iterdir())) == 1
    cache(sentence, 40)
    assert len(list(tmp_path.iterdir())) == 2


def test_own_speech_and_av3_lags_are_read(tmp_path):
    (tmp_path / "SOURCES_more.tsv").write_text(SOURCES)
    (tmp_path / "SOURCES_av3.tsv").write_text(
        "local_name\tcoupling_lag_ms\tnotes\tverified_own_speech\n"
        "videos/av3_x.mp4\t-240\tfrontal\tyes\nvideos/av3_y.mp4\t280\t3-s clip so the lag estimate is noisy\tyes\n"
    )
    assert data.own_speech(tmp_path) == {"av2_a", "av2_c", "av3_x", "av3_y"}
    assert data.documented_lags(tmp_path) == {"av2_a": -3, "av2_b": -6, "av2_c": -1, "av3_x": -6}


def test_a_few_training_steps_lower_the_loss(synthetic_clips):
    torch.manual_seed(0)
    model = MotionDenoiser(d_model=32, n_layers=1, n_heads=2, d_ff=64, audio_dim=16, window=8, mel_future=8,
                           phone_past=8)  # fmt: skip
    losses = train(model, synthetic_clips, TrainConfig(steps=60, batch=16, lr=3e-3))
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    stats = statistics(synthetic_clips)
    torch.testing.assert_close(model.motion_std, stats["motion_std"])
    assert not model.training


def test_window_sampler_draws_valid_windows(synthetic_clips):
    sampler = WindowSampler(synthetic_clips, 8, 20, 16, {"tts": 1.0}, np.random.default_rng(0))
    mot, mel, phones, mask = sampler.draw(5)
    assert mot.shape == (5, 8, vector.DIM) and mel.shape == (5, 8, 20, audio.N_MELS) and mask.shape == (5, vector.DIM)
    assert phones.shape == (5, 8, 16, phonetic.FEATURES)
