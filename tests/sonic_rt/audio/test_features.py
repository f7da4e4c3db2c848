import numpy as np
import pytest

from sonic_rt.audio import HOP, MELS_PER_FRAME, N_MELS, SAMPLE_RATE, SAMPLES_PER_FRAME, WIN
from sonic_rt.audio.decode import decode_audio, iter_audio
from sonic_rt.audio.features import MEL_FILTERS, SILENCE_LOG_MEL, LogMelStream, log_mel
from tests.sonic_rt.audio.test_decode import write_audio


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """A chirp with a syllable-rate envelope over soft noise, float32 at 16 kHz."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.4 * envelope * np.sin(2 * np.pi * (150 + 1500 * t) * t) + 0.02 * noise).astype(np.float32)


def stream_in_chunks(audio: np.ndarray, chunk: int) -> np.ndarray:
    stream = LogMelStream()
    frames = [stream.push(audio[i : i + chunk]) for i in range(0, len(audio), chunk)]
    assert stream.frames_done == len(audio) // HOP
    return np.concatenate(frames)


@pytest.mark.parametrize("n_samples", [0, HOP - 1, HOP, WIN + 1, SAMPLE_RATE])
def test_one_frame_per_hop(n_samples):
    mel = log_mel(np.zeros(n_samples, np.float32))
    assert mel.shape == (n_samples // HOP, N_MELS) and mel.dtype == np.float32
    assert np.all(mel == np.float32(SILENCE_LOG_MEL))


def test_frame_k_covers_the_window_ending_at_k_plus_1_hops():
    impulse = np.zeros(SAMPLE_RATE // 10, np.float32)
    impulse[1000] = 1.0
    touched = np.flatnonzero((log_mel(impulse) > SILENCE_LOG_MEL).any(axis=1))
    expected = [k for k in range(len(impulse) // HOP) if (k + 1) * HOP - WIN <= 1000 < (k + 1) * HOP]
    assert touched.tolist() == expected == [6, 7]


def test_a_frame_is_ready_as_soon_as_its_last_sample_arrives():
    stream = LogMelStream()
    assert stream.push(np.ones(HOP - 1, np.float32)).shape == (0, N_MELS)
    assert stream.push(np.ones(1, np.float32)).shape == (1, N_MELS)
    assert stream.push(np.ones(SAMPLES_PER_FRAME, np.float32)).shape == (MELS_PER_FRAME, N_MELS)
    assert stream.frames_done == 1 + MELS_PER_FRAME


def test_one_khz_sine_lands_in_its_mel_bin():
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    mel = log_mel((0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    # 1 kHz is 15 Slaney mel; filter m is centred on mel (m + 1) * mel(8 kHz) / 81, so m = 26 (1005 Hz)
    assert np.bincount(mel[3:].argmax(axis=1)).argmax() == 26


def test_matches_librosa_reference():
    # librosa 0.11 melspectrogram(sr=16000, n_fft=512, hop_length=160, win_length=400, window="hann",
    # center=False, power=2, n_mels=80, norm="slaney") of this signal, zero-padded to our framing, log10
    t = np.arange(8000) / SAMPLE_RATE
    audio = (0.5 * np.sin(2 * np.pi * (200 + 1800 * t) * t) + 0.1 * np.sin(2 * np.pi * 3100 * t)).astype(np.float32)
    mel = log_mel(audio)
    reference = [
        (0, 3, 0.677055835723877),
        (1, 10, -1.8782942295074463),
        (25, 28, 1.7775369882583618),
        (40, 55, 0.049875080585479736),
        (40, 39, 1.6176040172576904),
        (49, 40, -3.487839460372925),
    ]
    for frame, band, value in reference:
        assert mel[frame, band] == pytest.approx(value, abs=1e-5)


def test_filters_are_slaney_area_normalised():
    assert MEL_FILTERS.shape == (N_MELS, 257)
    bin_hz = SAMPLE_RATE / 2 / 256
    area = MEL_FILTERS.sum(axis=1) * bin_hz  # unit area in Hz, up to sampling of narrow low filters
    assert np.allclose(area, 1.0, atol=0.15) and np.allclose(area[40:], 1.0, atol=0.02)
    assert np.all(np.diff(MEL_FILTERS.argmax(axis=1)) >= 0)


@pytest.mark.parametrize("chunk", [1, 37, 320, 333, 1601, 48000])
def test_streaming_equals_whole_signal(chunk):
    audio = speechlike(0.5 if chunk == 1 else 3.0)
    assert np.array_equal(stream_in_chunks(audio, chunk), log_mel(audio))


def test_streaming_a_file_equals_decoding_it_whole(tmp_path):
    signal = np.stack([speechlike(2.0, seed=1), speechlike(2.0, seed=2)]).astype(np.float64)
    write_audio(tmp_path / "a.mp3", signal, SAMPLE_RATE, "libmp3lame", "stereo")
    stream = LogMelStream()
    streamed = np.concatenate([stream.push(c) for c in iter_audio(tmp_path / "a.mp3", chunk_samples=320)])
    assert np.array_equal(streamed, log_mel(decode_audio(tmp_path / "a.mp3")))


def test_stream_keeps_only_a_short_tail():
    stream = LogMelStream()
    for _ in range(50):
        stream.push(speechlike(0.333))
        assert len(stream._tail) < WIN


def test_reset_starts_a_new_signal():
    audio = speechlike(1.0)
    stream = LogMelStream()
    first = stream.push(audio[:7000])
    stream.push(audio)
    stream.reset()
    assert stream.frames_done == 0
    assert np.array_equal(stream.push(audio[:7000]), first)


def test_refuses_multichannel_input():
    with pytest.raises(ValueError, match="expected"):
        LogMelStream().push(np.zeros((320, 2), np.float32))
