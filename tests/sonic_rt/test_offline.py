"""``generate``: photo + audio file -> MP4, checked with ffprobe and by decoding the result."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sonic_rt import audio
from sonic_rt.audio.decode import CHUNK_SAMPLES, decode_audio
from sonic_rt.errors import SonicError
from sonic_rt.offline import JobParams, generate, prepare
from tests.conftest import REPO, png_bytes, write_wav

SMALL = {"min_resolution": 256}


def ffprobe(path: Path) -> dict:
    exe = shutil.which("ffprobe")
    if exe is None:
        pytest.skip("ffprobe is not installed (apt-get install ffmpeg)")
    out = subprocess.run(
        [exe, "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    info = json.loads(out.stdout)
    return {s["codec_type"]: s for s in info["streams"]} | {"format": info["format"]}


@pytest.fixture(scope="module")
def portrait(tmp_path_factory, astronaut) -> Path:
    path = tmp_path_factory.mktemp("portrait") / "astronaut.png"
    path.write_bytes(png_bytes(astronaut))
    return path


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory, sentence) -> Path:
    return write_wav(tmp_path_factory.mktemp("audio") / "speech.wav", sentence)


def test_mp4_plays_in_browsers_and_lasts_as_long_as_the_audio(portrait, speech_wav, sentence, tmp_path):
    done = []
    result = generate(portrait, speech_wav, tmp_path / "out.mp4", progress=lambda d, t: done.append((d, t)), **SMALL)
    audio_s = len(sentence) / audio.SAMPLE_RATE
    frames = -(-len(sentence) // audio.SAMPLES_PER_FRAME)
    assert result.frames == frames and result.seconds == pytest.approx(frames / 25)
    assert result.realtime_factor > 0 and {"enroll", "motion", "render", "encode"} <= set(result.timings_ms)
    assert done[-1] == (frames, frames) and [d for d, _ in done] == sorted(d for d, _ in done)

    info = ffprobe(result.output)
    v, a = info["video"], info["audio"]
    assert (v["codec_name"], v["pix_fmt"], v["width"], v["height"]) == ("h264", "yuv420p", 256, 256)
    assert v["avg_frame_rate"] == "25/1" and int(v["nb_read_frames"]) == frames
    assert a["codec_name"] == "aac"
    assert float(v["duration"]) == pytest.approx(audio_s, abs=1 / 25)  # video = audio within one frame
    assert float(a["duration"]) == pytest.approx(float(v["duration"]), abs=1 / 25)
    assert float(v["start_time"]) == 0 and float(a["start_time"]) == 0
    data = result.output.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart


def test_every_frame_carries_the_watermark_and_the_label_when_asked(portrait, speech_wav, tmp_path):
    from sonic_rt.provenance.label import Label
    from sonic_rt.provenance.watermark import detect_video

    plain = generate(portrait, speech_wav, tmp_path / "plain.mp4", **SMALL)
    assert detect_video(plain.output).payload == plain.watermark  # a fresh payload by default
    labelled = generate(portrait, speech_wav, tmp_path / "label.mp4", watermark=0xABCDEF01, label=True, **SMALL)
    assert labelled.watermark == 0xABCDEF01 and detect_video(labelled.output).payload == 0xABCDEF01
    first = [next(iter(_frames(path))) for path in (plain.output, labelled.output)]
    corner = Label(256).box
    diff = np.abs(first[0].astype(int) - first[1]).mean(axis=2)
    assert diff[corner].mean() > 30 and np.delete(diff, corner[0], axis=0).mean() < 3


def _frames(path: Path):
    import av

    with av.open(str(path)) as container:
        yield from (f.to_ndarray(format="rgb24") for f in container.decode(video=0))


def test_audio_in_the_file_is_aligned_with_the_source(portrait, speech_wav, sentence, tmp_path):
    out = generate(portrait, speech_wav, tmp_path / "out.mp4", **SMALL).output
    back = decode_audio(out)
    n = min(len(back), len(sentence))
    corr = np.correlate(back[:n], sentence[:n][1000:-1000], mode="valid")  # lag 0 at index 1000
    assert abs(int(np.argmax(corr)) - 1000) <= 16  # within 1 ms
    assert np.abs(back[len(sentence) :]).max(initial=0) < 0.02  # only silence after it


@pytest.mark.parametrize(
    ("duration", "flags", "code"),
    [(4.0, {}, "duration_mismatch"), (1.0, {}, "duration_mismatch"), (4.0, {"trim": True}, "duration_mismatch"),
     (1.0, {"pad": True}, "duration_mismatch")],
    ids=["longer", "shorter", "longer-with-trim", "shorter-with-pad"],
)  # fmt: skip
def test_a_duration_other_than_the_audio_is_an_error_unless_asked_for(portrait, speech_wav, tmp_path, duration,
                                                                      flags, code):  # fmt: skip
    with pytest.raises(SonicError) as info:
        generate(portrait, speech_wav, tmp_path / "out.mp4", duration=duration, **flags, **SMALL)
    assert info.value.code == code and ("--pad" in str(info.value) or "--trim" in str(info.value))
    assert not list(tmp_path.iterdir())


def test_pad_holds_the_face_idle_over_silence_and_trim_cuts(portrait, speech_wav, sentence, tmp_path):
    padded = generate(portrait, speech_wav, tmp_path / "pad.mp4", duration=4.0, pad=True, **SMALL)
    info = ffprobe(padded.output)
    assert int(info["video"]["nb_read_frames"]) == 100
    assert float(info["audio"]["duration"]) == pytest.approx(4.0, abs=1 / 25)
    trimmed = generate(portrait, speech_wav, tmp_path / "trim.mp4", duration=1.0, trim=True, **SMALL)
    info = ffprobe(trimmed.output)
    assert int(info["video"]["nb_read_frames"]) == 25
    assert float(info["audio"]["duration"]) == pytest.approx(1.0, abs=1 / 25)
    back = decode_audio(trimmed.output)
    assert np.abs(back[: audio.SAMPLE_RATE // 2]).max() > 0.05  # the speech it kept


def test_a_duration_within_one_frame_of_the_audio_is_accepted(portrait, speech_wav, sentence, tmp_path):
    seconds = len(sentence) / audio.SAMPLE_RATE + 0.03
    result = generate(portrait, speech_wav, tmp_path / "out.mp4", duration=seconds, **SMALL)
    assert result.frames == round(seconds * 25)


def test_other_frame_rates(portrait, speech_wav, sentence, tmp_path):
    result = generate(portrait, speech_wav, tmp_path / "out.mp4", fps=30, **SMALL)
    info = ffprobe(result.output)
    assert info["video"]["avg_frame_rate"] == "30/1"
    assert int(info["video"]["nb_read_frames"]) == -(-len(sentence) * 30 // audio.SAMPLE_RATE)
    assert float(info["video"]["duration"]) == pytest.approx(len(sentence) / audio.SAMPLE_RATE, abs=1 / 30)


def motion_of(job) -> np.ndarray:
    return np.stack([f.motion for chunk in job.chunks() for f in chunk.frames])


def test_seed_makes_runs_reproducible(portrait, speech_wav):
    a = motion_of(prepare(portrait, speech_wav, JobParams.from_flat(seed=3, **SMALL)))
    b = motion_of(prepare(portrait, speech_wav, JobParams.from_flat(seed=3, **SMALL)))
    c = motion_of(prepare(portrait, speech_wav, JobParams.from_flat(seed=4, **SMALL)))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.01


def test_samples_in_memory_give_the_same_video_as_the_file(portrait, speech_wav):
    samples = decode_audio(speech_wav)
    np.testing.assert_array_equal(
        motion_of(prepare(portrait, samples, JobParams.from_flat(**SMALL))),
        motion_of(prepare(portrait, speech_wav, JobParams.from_flat(**SMALL))),
    )


def test_unknown_and_out_of_range_parameters_are_refused(portrait, speech_wav, tmp_path):
    with pytest.raises(TypeError, match="unknown parameter 'sharpness'"):
        generate(portrait, speech_wav, tmp_path / "o.mp4", sharpness=2)
    for bad in ({"dynamic_scale": 3.0}, {"fps": 5}, {"min_resolution": 255}, {"duration": -1.0},
                {"lip_sync_offset_ms": 900.0}):  # fmt: skip
        with pytest.raises(ValueError):
            generate(portrait, speech_wav, tmp_path / "o.mp4", **bad)


def faceless(tmp: Path) -> Path:
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(tmp / "flat.png")
    return tmp / "flat.png"


def written(name: str, data: bytes):
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name

    return make


def zero_length_wav(tmp: Path) -> Path:
    return write_wav(tmp / "empty.wav", np.zeros(0, np.float32))


@pytest.mark.parametrize(
    ("make_audio", "code"),
    [
        (lambda tmp: tmp / "missing.wav", "unreadable_audio"),
        (written("empty.mp3", b""), "unreadable_audio"),
        (written("corrupt.mp3", np.random.default_rng(0).bytes(20_000)), "unreadable_audio"),
        (zero_length_wav, "empty_audio"),
        (lambda tmp: write_wav(tmp / "silent.wav", np.zeros(16000, np.float32)), "silent_audio"),
        (lambda tmp: write_wav(tmp / "hum.wav", np.full(16000, 1e-4, np.float32)), "silent_audio"),
    ],
    ids=["missing", "empty-file", "corrupt", "zero-length", "digital-silence", "-80-dBFS"],
)
def test_bad_audio_gives_its_error_and_writes_nothing(portrait, tmp_path, make_audio, code):
    src = tmp_path / "in"
    src.mkdir()
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an earlier result")
    with pytest.raises(SonicError) as info:
        generate(portrait, make_audio(src), out, **SMALL)
    assert info.value.code == code
    assert out.read_bytes() == b"an earlier result"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out.mp4"]  # no partial file left


def test_audio_longer_than_the_limit_is_refused_as_soon_as_that_much_is_read(monkeypatch):
    """A WAV at 1 Hz holds 2000 s of audio in 4 KB (and 300 days in a 50 MiB upload: hours of
    decoding before anything else was checked); the limit is a day, here lowered to 30 s."""
    from sonic_rt import offline
    from sonic_rt.errors import AudioTooLong

    pcm = np.random.default_rng(0).integers(-3000, 3000, 2000).astype("<i2").tobytes()
    header = (b"RIFF" + (36 + len(pcm)).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
              + bytes([1, 0, 1, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 16, 0]) + b"data" + len(pcm).to_bytes(4, "little"))
    read = []
    pieces = offline.iter_source

    def counted(source, chunk_samples=CHUNK_SAMPLES):
        for piece in pieces(source, chunk_samples):
            read.append(len(piece))
            yield piece

    monkeypatch.setattr(offline, "iter_source", counted)
    assert offline.probe_audio(header + pcm).seconds == pytest.approx(2000, abs=1)
    monkeypatch.setattr(offline, "MAX_DURATION_S", 30.0)
    read.clear()
    with pytest.raises(AudioTooLong) as info:
        offline.probe_audio(header + pcm)
    assert info.value.code == "audio_too_long"
    assert sum(read) <= (30 + 10) * audio.SAMPLE_RATE  # stopped at the limit, not after 2000 s


def test_silence_is_accepted_when_asked_for(portrait, tmp_path):
    silent = write_wav(tmp_path / "silent.wav", np.zeros(16000, np.float32))
    result = generate(portrait, silent, tmp_path / "out.mp4", allow_silence=True, **SMALL)
    assert result.frames == 25


@pytest.mark.parametrize(
    ("make_portrait", "code"),
    [
        (lambda tmp: tmp / "missing.png", "unreadable_image"),
        (faceless, "no_face"),
        (written("x.jpg", b"\xff\xd8\xff\xe0 broken"), "unreadable_image"),
    ],
    ids=["missing", "no-face", "corrupt"],
)
def test_bad_portrait_gives_its_error(speech_wav, tmp_path, make_portrait, code):
    with pytest.raises(SonicError) as info:
        generate(make_portrait(tmp_path), speech_wav, tmp_path / "out.mp4", **SMALL)
    assert info.value.code == code
    assert not (tmp_path / "out.mp4").exists()


def test_unwritable_output(portrait, speech_wav, tmp_path):
    for out in (tmp_path / "no" / "such" / "dir.mp4", tmp_path):
        with pytest.raises(SonicError) as info:
            generate(portrait, speech_wav, out, **SMALL)
        assert info.value.code == "unwritable_output"


LONG_AUDIO_SCRIPT = """
import re, sys, wave
import numpy as np
import torch
torch.set_num_threads(1)
from sonic_rt.offline import generate

def write(path, seconds):
    rng = np.random.default_rng(0)
    with wave.open(path, "wb") as w:  # 8 kHz 8-bit noise: 2 hours is 58 MB on disk
        w.setnchannels(1); w.setsampwidth(1); w.setframerate(8000)
        block = rng.integers(100, 156, 8000 * 60).astype(np.uint8).tobytes()
        for _ in range(int(seconds // 60)):
            w.writeframes(block)
    return path

tmp, portrait = sys.argv[1], sys.argv[2]
peaks = []
for seconds in (60, 2 * 3600):
    path = write(f"{tmp}/noise{seconds}.wav", seconds)
    generate(portrait, path, f"{tmp}/out{seconds}.mp4", duration=2.0, trim=True, min_resolution=256)
    status = open("/proc/self/status").read()  # VmHWM: this process's own peak (ru_maxrss inherits the parent's)
    peaks.append(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024)
print(peaks[0], peaks[1])
"""


def test_two_hours_of_audio_keep_memory_flat(portrait, tmp_path):
    """The audio is read through twice (length, then frames), never held whole: 2 h of 16 kHz
    float32 would be 460 MB; peak memory grows by less than 40 MB from a 1-minute file."""
    out = subprocess.run(
        [sys.executable, "-c", LONG_AUDIO_SCRIPT, str(tmp_path), str(portrait)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    short_mb, long_mb = map(float, out.stdout.split()[-2:])
    assert long_mb - short_mb < 40, (short_mb, long_mb)


def test_the_package_exposes_the_api_lazily():
    import sonic_rt

    assert sonic_rt.generate is generate and sonic_rt.prepare is prepare and sonic_rt.JobParams is JobParams
    with pytest.raises(AttributeError):
        sonic_rt.no_such_thing  # noqa: B018
    code = "import sonic_rt, sys; assert 'torch' not in sys.modules and 'sonic_rt.offline' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_job_params_round_trip_through_their_flat_names():
    params = JobParams.from_flat(fps=30, duration=2.0, seed=4, min_resolution=256, trim=True)
    flat = params.to_flat()
    assert JobParams.from_flat(**flat) == params
    assert flat["fps"] == 30 and flat["min_resolution"] == 256 and flat["block_frames"] == params.motion.block_frames
    assert len(flat) == len({*flat}) == 15
