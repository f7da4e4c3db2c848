from click.testing import CliRunner

from sonic_rt.train.__main__ import main


def test_training_command_documents_its_options():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for option in ("--data", "--out", "--steps", "--tts-utterances", "--no-video", "--seed"):
        assert option in result.output


def test_training_without_any_data_source_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["--no-video", "--no-tts", "--out", str(tmp_path / "w")])
    assert result.exit_code != 0
    assert "nothing to train on" in result.output
    assert not (tmp_path / "w").exists()


def test_missing_video_data_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["--data", str(tmp_path), "--out", str(tmp_path / "w")])
    assert result.exit_code != 0
    assert "no talking videos under" in result.output
