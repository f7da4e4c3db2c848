import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from sonic_rt.audio import HOP, MELS_PER_FRAME, SAMPLE_RATE, SAMPLES_PER_FRAME, exact_div
from sonic_rt.audio.decode import ChunkResampler, decode_audio, iter_audio
from sonic_rt.errors import SonicError


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate)


def write_audio(target, signal: np.ndarray, rate: int, codec: str, layout: str, fmt: str | None = None) -> None:
    """Encode ``(channels, n)`` float samples in [-1, 1] with PyAV into a path or file object."""
    with av.open(target, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        sample_format = stream.codec_context.format
        for start in range(0, signal.shape[1], 4096):
            block = signal[:, start : start + 4096]
            if sample_format.name.startswith("s16"):
                block = np.round(block * 32767).astype(np.int16)
            elif sample_format.name.startswith("s32"):
                block = np.round(block * (2**31 - 256)).astype(np.int32)
            else:
                block = block.astype(np.float32)
            if not sample_format.is_planar:
                block = block.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format=sample_format.name, layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def silent_video(tmp: Path, n_frames: int = 5) -> Path:
    path = tmp / "silent.mp4"
    with av.open(path, "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 40 * i, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def peak_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * SAMPLE_RATE / len(audio))


def amplitude(audio: np.ndarray) -> float:
    middle = audio[len(audio) // 4 : -len(audio) // 4]
    return float(middle.std() * np.sqrt(2))


FORMATS = [  # name, codec, rate, layout, container
    ("s16.wav", "pcm_s16le", 44100, "stereo", None),
    ("s24.wav", "pcm_s24le", 22050, "mono", None),
    ("f32.wav", "pcm_f32le", 8000, "mono", None),
    ("a.mp3", "libmp3lame", 44100, "stereo", None),
    ("a.m4a", "aac", 48000, "stereo", None),
    ("a.ogg", "libopus", 48000, "stereo", None),
    ("a.flac", "flac", 96000, "5.1", None),
    ("a.mkv", "flac", 32000, "mono", "matroska"),
]


def test_timing_constants_are_derived():
    assert (SAMPLES_PER_FRAME, MELS_PER_FRAME, HOP) == (640, 4, 160)
    with pytest.raises(ValueError, match="not a multiple"):
        exact_div(16000, 24)


@pytest.mark.parametrize(("name", "codec", "rate", "layout", "fmt"), FORMATS, ids=[f[0] for f in FORMATS])
def test_decodes_common_formats(tmp_path, name, codec, rate, layout, fmt):
    channels = av.AudioLayout(layout).nb_channels
    write_audio(tmp_path / name, np.tile(sine(440, 1.0, rate), (channels, 1)) / channels, rate, codec, layout, fmt)
    audio = decode_audio(tmp_path / name)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - SAMPLE_RATE) <= 0.01 * SAMPLE_RATE
    assert np.abs(audio).max() <= 1.0
    assert abs(peak_hz(audio) - 440) < 2


def test_decodes_the_audio_track_of_a_video(tmp_path):
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = out.add_stream("aac", rate=48000, layout="mono")  # AAC pads the end to 1024 samples
        for i in range(25):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")))
            samples = sine(440, 1.0, 48000)[i * 1920 : (i + 1) * 1920].astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, i * 1920, Fraction(1, 48000)
            out.mux(audio.encode(frame))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    decoded = decode_audio(buf.getvalue())
    assert abs(len(decoded) - SAMPLE_RATE) <= 0.01 * SAMPLE_RATE
    assert abs(peak_hz(decoded) - 440) < 2


def test_follows_a_format_change_mid_stream():
    first, second = io.BytesIO(), io.BytesIO()  # ADTS AAC streams simply concatenate
    write_audio(first, sine(440, 1.0, 48000)[None], 48000, "aac", "mono", "adts")
    write_audio(second, np.tile(sine(440, 1.0, 24000), (2, 1)) / 2, 24000, "aac", "stereo", "adts")
    audio = decode_audio(first.getvalue() + second.getvalue())
    assert abs(len(audio) - 2 * SAMPLE_RATE) <= 0.05 * 2 * SAMPLE_RATE
    assert abs(peak_hz(audio[: SAMPLE_RATE // 2]) - 440) < 4 and abs(peak_hz(audio[-SAMPLE_RATE // 2 :]) - 440) < 4


def test_reads_bytes_and_paths_alike(tmp_path):
    path = tmp_path / "take:1.wav"  # a colon would make ffmpeg read the name as a URL
    write_audio(path, sine(300, 0.5, 16000)[None], 16000, "pcm_s16le", "mono")
    from_path = decode_audio(path)
    assert np.array_equal(from_path, decode_audio(path.read_bytes()))
    assert np.array_equal(from_path, decode_audio(str(path)))
    # 16 kHz mono passes through: exactly the int16 samples / 32768
    assert np.array_equal(from_path, np.round(sine(300, 0.5, 16000) * 32767).astype(np.float32) / 32768)


@pytest.mark.parametrize(("right", "expected"), [(1.0, 0.5), (0.0, 0.25), (-1.0, 0.0)])
def test_stereo_is_averaged(tmp_path, right, expected):
    left = sine(440, 1.0, 44100)
    write_audio(tmp_path / "a.wav", np.stack([left, right * left]), 44100, "pcm_s16le", "stereo")
    assert amplitude(decode_audio(tmp_path / "a.wav")) == pytest.approx(expected, abs=2e-3)


def test_full_scale_surround_stays_in_range(tmp_path):
    write_audio(tmp_path / "a.flac", np.tile(sine(440, 0.5, 48000, 0.99), (6, 1)), 48000, "flac", "5.1")
    audio = decode_audio(tmp_path / "a.flac")
    assert np.abs(audio).max() <= 1.0 and amplitude(audio) > 0.5


def empty_file(tmp: Path) -> Path:
    (tmp / "empty.mp3").write_bytes(b"")
    return tmp / "empty.mp3"


def zero_length_wav(tmp: Path) -> Path:
    path = tmp / "empty.wav"
    with av.open(path, "w") as out:
        out.add_stream("pcm_s16le", rate=16000, layout="mono")
        out.start_encoding()  # PyAV writes the header only once told to, or at the first packet
    return path


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda tmp: tmp / "missing.wav", "unreadable_audio"),
        (lambda tmp: tmp, "unreadable_audio"),
        (lambda tmp: b"", "unreadable_audio"),
        (empty_file, "unreadable_audio"),
        (lambda tmp: np.random.default_rng(0).bytes(5000), "unreadable_audio"),
        (lambda tmp: b"this is a text file, not audio\n" * 40, "unreadable_audio"),
        (zero_length_wav, "empty_audio"),
        (silent_video, "no_audio_stream"),
    ],
    ids=[
        "missing",
        "directory",
        "no-bytes",
        "empty-file",
        "random-bytes",
        "text",
        "zero-length-wav",
        "video-without-audio",
    ],  # fmt: skip
)
def test_errors_carry_their_codes(tmp_path, make, code):
    with pytest.raises(SonicError) as info:
        decode_audio(make(tmp_path))
    assert info.value.code == code


def test_truncated_file_is_unreadable(tmp_path):
    write_audio(tmp_path / "a.m4a", sine(440, 1.0, 48000)[None], 48000, "aac", "mono")
    with pytest.raises(SonicError) as info:
        decode_audio((tmp_path / "a.m4a").read_bytes()[:300])
    assert info.value.code == "unreadable_audio"


def test_decode_error_mid_file_is_unreadable(tmp_path):
    write_audio(tmp_path / "a.mp3", sine(440, 1.0, 44100)[None], 44100, "libmp3lame", "mono")
    data = bytearray((tmp_path / "a.mp3").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 2000] = np.random.default_rng(0).bytes(2000)
    chunks = iter_audio(bytes(data), chunk_samples=1600)
    assert len(next(chunks)) == 1600  # what decodes before the damage arrives first
    with pytest.raises(SonicError) as info:
        list(chunks)
    assert info.value.code == "unreadable_audio"


def test_iter_audio_chunks_concatenate_to_decode_audio(tmp_path):
    write_audio(tmp_path / "a.mp3", sine(440, 1.3, 44100)[None], 44100, "libmp3lame", "mono")
    chunks = list(iter_audio(tmp_path / "a.mp3", chunk_samples=3000))
    assert all(len(c) == 3000 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= 3000
    assert np.array_equal(np.concatenate(chunks), decode_audio(tmp_path / "a.mp3"))


def test_iter_audio_is_lazy(tmp_path):
    write_audio(tmp_path / "a.wav", sine(440, 2.0, 16000)[None], 16000, "pcm_s16le", "mono")
    chunks = iter_audio(tmp_path / "a.wav", chunk_samples=SAMPLES_PER_FRAME)
    assert len(next(chunks)) == SAMPLES_PER_FRAME
    chunks.close()
    with pytest.raises(ValueError):
        next(iter_audio(tmp_path / "a.wav", chunk_samples=0))


def test_chunk_resampler_48k_stereo_int16():
    rate, chunk = 48000, 960  # 20 ms
    left = np.round(sine(440, 1.0, rate) * 32767).astype(np.int16)
    pcm = np.stack([left, left // 2], axis=1)  # (n, 2)
    resampler = ChunkResampler(rate, channels=2)
    pieces = [resampler.push(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)]
    out = np.concatenate([*pieces, resampler.flush()])
    assert out.dtype == np.float32 and len(out) == SAMPLE_RATE
    assert sum(len(p) for p in pieces) > SAMPLE_RATE - 40  # little is held back between chunks
    assert abs(peak_hz(out) - 440) < 2
    assert amplitude(out) == pytest.approx(0.375, abs=3e-3)

    whole = ChunkResampler(rate, channels=2)
    assert np.array_equal(out, np.concatenate([whole.push(pcm), whole.flush()]))
    interleaved = ChunkResampler(rate, channels=2)
    assert np.array_equal(out, np.concatenate([interleaved.push(pcm.reshape(-1)), interleaved.flush()]))


def test_chunk_resampler_matches_file_decoding():
    signal = sine(440, 0.5, 44100)
    buf = io.BytesIO()
    write_audio(buf, signal[None], 44100, "pcm_f32le", "mono", "wav")
    live = ChunkResampler(44100)
    pieces = [live.push(signal[i : i + 441].astype(np.float32)) for i in range(0, len(signal), 441)]
    assert np.allclose(np.concatenate([*pieces, live.flush()]), decode_audio(buf.getvalue()), atol=1e-6)


def test_chunk_resampler_passes_16k_mono_through():
    pcm = np.random.default_rng(0).integers(-32768, 32767, 1000, dtype=np.int16)
    resampler = ChunkResampler(16000)
    assert np.array_equal(resampler.push(pcm), pcm / np.float32(32768))
    floats = np.linspace(-1, 1, 7, dtype=np.float32)
    assert np.array_equal(resampler.push(floats), floats) and len(resampler.flush()) == 0


def test_chunk_resampler_starts_afresh_after_flush():
    pcm = np.round(sine(440, 0.2, 22050) * 32767).astype(np.int16)
    resampler = ChunkResampler(22050)
    first = np.concatenate([resampler.push(pcm), resampler.flush()])
    assert np.array_equal(first, np.concatenate([resampler.push(pcm), resampler.flush()]))
    assert len(resampler.push(np.zeros(0, np.int16))) == 0


@pytest.mark.parametrize(
    ("rate", "channels", "code"),
    [(7999, 1, "bad_sample_rate"), (192001, 1, "bad_sample_rate"), (44100.0, 1, "bad_sample_rate")]
    + [(16000, 0, "bad_channel_count"), (16000, 9, "bad_channel_count")],
)
def test_chunk_resampler_refuses_bad_formats(rate, channels, code):
    with pytest.raises(SonicError) as info:
        ChunkResampler(rate, channels)
    assert info.value.code == code


@pytest.mark.parametrize(
    "pcm",
    [
        np.zeros(960, np.float64),
        np.zeros(960, np.int32),
        [0, 1, 2],
        np.zeros(961, np.int16),
        np.zeros((960, 3), np.int16),
        np.zeros((2, 960), np.int16),
        np.full((960, 2), np.nan, np.float32),
    ],
    ids=["float64", "int32", "list", "odd-interleaved", "three-channels", "channels-first", "nan"],
)
def test_chunk_resampler_refuses_bad_chunks(pcm):
    with pytest.raises(SonicError) as info:
        ChunkResampler(48000, channels=2).push(pcm)
    assert info.value.code == "bad_audio_chunk"


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (16000, 2), (48000, 2)])
def test_chunk_resampler_clips_finite_extremes(rate, channels):
    """Finite but absurd float samples are clipped like a decoded file's: ±3e38 in two channels
    overflowed to infinity in the channel mix, and from there NaN reached the motion model."""
    square = np.sign(np.sin(np.arange(rate // 10) / 5)).astype(np.float32)
    pcm = np.repeat((3e38 * square)[:, None], channels, axis=1).astype(np.float32)
    out = ChunkResampler(rate, channels).push(pcm)
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0 + 1e-6
    if rate == 16000:
        np.testing.assert_array_equal(out, square)


@pytest.mark.parametrize(("bad", "rate"), [(np.nan, 16000), (np.nan, 44100), (np.inf, 44100), (-np.inf, 16000)])
def test_a_float_file_with_nan_or_infinite_samples_is_unreadable(tmp_path, bad, rate):
    """A NaN passed the clip (and made the peak 0: the file was called silent, and with
    ``--allow-silence`` the renderer raised on NaN motion)."""
    signal = sine(440, 1.0, rate)
    signal[rate // 2] = bad
    write_audio(tmp_path / "a.wav", signal[None], rate, "pcm_f32le", "mono")
    with pytest.raises(SonicError) as info:
        decode_audio(tmp_path / "a.wav")
    assert info.value.code == "unreadable_audio" and "NaN or infinite" in str(info.value)
