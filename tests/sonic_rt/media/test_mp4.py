import av
import numpy as np
import pytest

from sonic_rt.audio import SAMPLE_RATE
from sonic_rt.audio.decode import decode_audio
from sonic_rt.media.mp4 import Mp4Writer


def write(path, frames: int, seconds: float, size: int = 64):
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with Mp4Writer(path, size) as out:
        for i in range(frames):
            out.write_frame(np.full((size, size, 3), (i * 7) % 255, np.uint8))
            out.write_audio(tone[i * 640 : (i + 1) * 640])
        out.write_audio(tone[frames * 640 :])
    return tone


def test_h264_aac_faststart_with_matching_durations(tmp_path):
    path = tmp_path / "out.mp4"
    tone = write(path, 50, 2.0)
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and v.codec_context.pix_fmt == "yuv420p"
        assert a.codec_context.name == "aac"
        assert v.start_time == 0 and a.start_time == 0  # both start together: aligned by construction
        video_s = float(v.duration * v.time_base)
        audio_s = float(a.duration * a.time_base)
    assert video_s == pytest.approx(2.0, abs=0.04)
    assert audio_s == pytest.approx(2.0, abs=0.04)  # within one frame of the video
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: playable while downloading
    with av.open(str(path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 50
    back = decode_audio(path)
    assert len(back) == pytest.approx(len(tone), abs=640)
    spec = np.abs(np.fft.rfft(back[:SAMPLE_RATE]))
    assert np.argmax(spec) == pytest.approx(440, abs=3)


def test_odd_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="even"):
        Mp4Writer(tmp_path / "x.mp4", 63)


def test_threaded_writer_makes_the_same_file_contents(tmp_path):
    from sonic_rt.media.mp4 import ThreadedMp4Writer

    writer = ThreadedMp4Writer(tmp_path / "t.mp4", 64, depth=2)
    for i in range(30):
        writer.write_frame(np.full((64, 64, 3), (i * 7) % 255, np.uint8))
        writer.write_audio(np.zeros(640, np.float32))
    writer.close()
    assert writer.encode_ms > 0
    with av.open(str(tmp_path / "t.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 30
    assert len(decode_audio(tmp_path / "t.mp4")) == pytest.approx(30 * 640, abs=640)


def test_threaded_writer_raises_the_encoders_error_to_the_producer(tmp_path):
    from sonic_rt.media.mp4 import ThreadedMp4Writer

    writer = ThreadedMp4Writer(tmp_path / "t.mp4", 64, depth=1)
    writer.write_frame(np.zeros((64, 64), np.uint8))  # not RGB: the encoder thread fails on it
    with pytest.raises(ValueError):
        for _ in range(50):
            writer.write_frame(np.zeros((64, 64, 3), np.uint8))
        writer.close()
    writer.abort()  # after a failure, stopping is still safe


def test_a_fragmented_mp4_plays_at_every_complete_prefix(tmp_path):
    from sonic_rt.media.mp4 import complete_length

    path = tmp_path / "live.mp4"
    out = Mp4Writer(path, 64, fragmented=True)
    rng = np.random.default_rng(0)
    for _ in range(110):  # 4.4 s: a keyframe, hence a fragment, at least every second
        out.write_frame(rng.integers(0, 255, (64, 64, 3), np.uint8))
        out.write_audio(np.zeros(640, np.float32))
    data = path.read_bytes()  # still being written: the last fragment is incomplete or unwritten
    prefix = tmp_path / "prefix.mp4"
    seen = []
    for cut in (len(data), len(data) - 100, len(data) // 2):
        prefix.write_bytes(data[:cut])
        n = complete_length(prefix)
        assert 0 < n <= cut and data[:n].find(b"moof") > 0
        prefix.write_bytes(data[:n])
        with av.open(str(prefix)) as c:
            seen.append(sum(1 for _ in c.decode(video=0)))  # every frame of the whole fragments there
    assert 110 > seen[0] >= seen[1] > seen[2] > 0
    out.close()
    assert complete_length(path) == path.stat().st_size
    with av.open(str(path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 110
