import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from sonic_rt.cli import EXIT_BAD_INPUT, main
from tests.conftest import png_bytes


@pytest.fixture(scope="module")
def portrait(tmp_path_factory, astronaut):
    path = tmp_path_factory.mktemp("cli") / "astronaut.png"
    path.write_bytes(png_bytes(astronaut))
    return path


def test_enroll_prints_box_landmarks_and_timings(portrait, tmp_path):
    result = CliRunner().invoke(main, ["enroll", str(portrait), "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "face box" in result.output and "landmarks    478" in result.output and "analyze" in result.output
    assert len(list(tmp_path.glob("*.npz"))) == 1


def test_enroll_json(portrait):
    result = CliRunner().invoke(main, ["enroll", str(portrait), "--json", "--min-resolution", "256"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["landmarks"] == 478 and info["output_size"] == 256 and info["faces_found"] == 1


@pytest.mark.parametrize(
    ("content", "code"),
    [(b"", "unreadable_image"), (b"not an image", "unreadable_image"), ("flat", "no_face")],
)
def test_enroll_bad_input_exits_non_zero_with_the_error(tmp_path, content, code):
    path = tmp_path / "bad.png"
    if content == "flat":
        Image.fromarray(np.full((200, 200, 3), 120, np.uint8)).save(path)
    else:
        path.write_bytes(content)
    result = CliRunner().invoke(main, ["enroll", str(path)])
    assert result.exit_code == EXIT_BAD_INPUT
    assert f"error [{code}]" in result.output


def test_enroll_missing_file(tmp_path):
    result = CliRunner().invoke(main, ["enroll", str(tmp_path / "missing.jpg")])
    assert result.exit_code == EXIT_BAD_INPUT and "no such file" in result.output


def test_enroll_rejects_out_of_range_parameters(portrait):
    result = CliRunner().invoke(main, ["enroll", str(portrait), "--expand-ratio", "3"])
    assert result.exit_code == 2 and "expand-ratio" in result.output


def test_preview_writes_a_contact_sheet(portrait, tmp_path):
    out = tmp_path / "sheet.png"
    result = CliRunner().invoke(main, ["preview", str(portrait), "-o", str(out), "--tile", "128"])
    assert result.exit_code == 0, result.output
    sheet = np.asarray(Image.open(out))
    assert sheet.shape == (4 * 128, 5 * 128, 3)
    tiles = sheet.reshape(4, 128, 5, 128, 3).swapaxes(1, 2).reshape(20, 128, 128, 3)
    assert len({t[:100].tobytes() for t in tiles}) == 20  # every motion looks different


def test_help_says_what_is_not_built_yet():
    result = CliRunner().invoke(main, ["--help"])
    assert "Not built yet: the invisible watermark" in result.output
    assert "enroll" in result.output and "generate" in result.output


def test_builtin_sample_portrait():
    result = CliRunner().invoke(main, ["enroll", "sample:astronaut"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["enroll", "sample:nobody"])
    assert result.exit_code == 2 and "sample:astronaut" in result.output


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory, sentence):
    from tests.conftest import write_wav

    return write_wav(tmp_path_factory.mktemp("cli-audio") / "speech.wav", sentence)


def test_generate_writes_an_mp4_and_reports_frames_seconds_and_speed(portrait, speech_wav, sentence, tmp_path):
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(main, ["generate", str(portrait), str(speech_wav), "-o", str(out), "--min-resolution",
                                       "256", "--fps", "30", "--seed", "2", "--dynamic-scale", "1.2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    frames = -(-len(sentence) * 30 // 16000)
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"wrote {out}: {frames} frames, {frames / 30:.2f} s at 30 fps") and "x real time" in last
    assert "render" in result.output and "encode" in result.output
    assert "━" not in result.output  # no progress bar when not on a terminal
    assert out.stat().st_size > 10_000


def test_generate_takes_the_built_in_sample(speech_wav, tmp_path):
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(main, ["generate", "sample:astronaut", str(speech_wav), "-o", str(out),
                                       "--min-resolution", "128", "--duration", "1", "--trim"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "25 frames" in result.output


@pytest.mark.parametrize(
    ("extra", "code"),
    [(["--duration", "9"], "duration_mismatch"), (["--duration", "1"], "duration_mismatch")],
    ids=["longer", "shorter"],
)
def test_generate_duration_mismatch_is_an_error_that_says_what_to_do(portrait, speech_wav, tmp_path, extra, code):
    result = CliRunner().invoke(main, ["generate", str(portrait), str(speech_wav), "-o", str(tmp_path / "o.mp4"),
                                       *extra])  # fmt: skip
    assert result.exit_code == EXIT_BAD_INPUT
    assert f"error [{code}]" in result.output and ("--pad" in result.output or "--trim" in result.output)
    assert not (tmp_path / "o.mp4").exists()


def test_generate_bad_inputs_exit_2_with_their_codes(portrait, speech_wav, tmp_path):
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((200, 200, 3), 120, np.uint8)).save(flat)
    silent = tmp_path / "silent.wav"
    from tests.conftest import write_wav

    write_wav(silent, np.zeros(8000, np.float32))
    out = str(tmp_path / "o.mp4")
    cases = [
        ([flat, speech_wav, out], "no_face"),
        ([portrait, tmp_path / "missing.wav", out], "unreadable_audio"),
        ([portrait, silent, out], "silent_audio"),
        ([portrait, speech_wav, tmp_path / "nope" / "o.mp4"], "unwritable_output"),
    ]
    for (image, sound, target), code in cases:
        result = CliRunner().invoke(main, ["generate", str(image), str(sound), "-o", str(target)])
        assert result.exit_code == EXIT_BAD_INPUT, (code, result.output)
        assert f"error [{code}]" in result.output


def test_generate_rejects_out_of_range_parameters(portrait, speech_wav, tmp_path):
    for bad in (["--dynamic-scale", "5"], ["--fps", "200"], ["--lip-sync-offset-ms", "-900"], ["--duration", "0"]):
        result = CliRunner().invoke(main, ["generate", str(portrait), str(speech_wav), "-o", str(tmp_path / "o.mp4"),
                                           *bad])  # fmt: skip
        assert result.exit_code == 2 and "Invalid value" in result.output, bad


def test_generate_can_speak_text_with_the_embedded_tts(portrait, tmp_path):
    pytest.importorskip("sonic_rt.tts")
    out = tmp_path / "hello.mp4"
    result = CliRunner().invoke(main, ["generate", str(portrait), "--say", "Hello there.", "-o", str(out),
                                       "--min-resolution", "128"])  # fmt: skip
    if "tts_unavailable" in result.output:
        pytest.skip(result.output)
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1000
    bad = CliRunner().invoke(main, ["generate", str(portrait), "--say", "Hi.", "--voice", "xx-nope", "-o", str(out)])
    assert bad.exit_code == EXIT_BAD_INPUT and "error [unknown_voice]" in bad.output


def test_generate_needs_audio_or_text_but_not_both(portrait, speech_wav, tmp_path):
    for args in ([], [str(speech_wav), "--say", "Hello."]):
        result = CliRunner().invoke(main, ["generate", str(portrait), *args, "-o", str(tmp_path / "o.mp4")])
        assert result.exit_code == 2 and "either an AUDIO file or --say" in result.output
