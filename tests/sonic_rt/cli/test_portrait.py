"""``sonic-rt enroll`` and ``preview`` (``sonic_rt.cli.portrait``), and the group's help."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from sonic_rt.cli import main
from sonic_rt.cli.options import EXIT_BAD_INPUT


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
    assert info["layers"] is True and info["notes"] == []


def test_enroll_says_when_no_person_was_found(portrait, monkeypatch):
    from sonic_rt.face.analysis import FaceAnalyzer

    monkeypatch.setattr(FaceAnalyzer, "segment_person", lambda self, image: np.zeros(image.shape[:2], np.float32))
    result = CliRunner().invoke(main, ["enroll", str(portrait), "--min-resolution", "256"])
    assert result.exit_code == 0, result.output
    assert "layers       none" in result.output and "no person found by segmentation" in result.output
    info = json.loads(CliRunner().invoke(main, ["enroll", str(portrait), "--json", "--min-resolution", "256"]).output)
    assert info["layers"] is False and "no person found" in info["notes"][0]


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


def test_help_lists_the_commands_and_nothing_left_unbuilt():
    result = CliRunner().invoke(main, ["--help"])
    assert "not built" not in result.output.lower()
    for command in ("enroll", "generate", "audit", "watermark"):
        assert command in result.output


def test_builtin_sample_portrait():
    result = CliRunner().invoke(main, ["enroll", "sample:astronaut"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["enroll", "sample:nobody"])
    assert result.exit_code == 2 and "sample:astronaut" in result.output
