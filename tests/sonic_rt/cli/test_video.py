"""``sonic-rt generate`` (``sonic_rt.cli.video``)."""

import getpass
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from sonic_rt.cli import main
from sonic_rt.cli.options import EXIT_BAD_INPUT
from sonic_rt.provenance.audit import CONSENT_ATTESTATION, SAMPLE_CONSENT, AuditLog
from sonic_rt.provenance.watermark import detect_video
from sonic_rt.render.identity import sha256_of


def test_generate_writes_an_mp4_and_reports_frames_seconds_and_speed(portrait, speech_wav, sentence, tmp_path):
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(main, ["generate", str(portrait), str(speech_wav), "-o", str(out), "--consent",
                                       "--min-resolution", "256", "--fps", "30", "--seed", "2", "--dynamic-scale",
                                       "1.2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    frames = -(-len(sentence) * 30 // 16000)
    last = result.output.strip().splitlines()[-2]
    assert last.startswith(f"wrote {out}: {frames} frames, {frames / 30:.2f} s at 30 fps") and "x real time" in last
    assert "render" in result.output and "encode" in result.output
    assert "━" not in result.output  # no progress bar when not on a terminal
    assert out.stat().st_size > 10_000


def test_generate_takes_the_built_in_sample_and_records_the_run(speech_wav, tmp_path, astronaut):
    out, db = tmp_path / "out.mp4", tmp_path / "audit.db"
    result = CliRunner().invoke(main, ["generate", "sample:astronaut", str(speech_wav), "-o", str(out),
                                       "--min-resolution", "256", "--duration", "1", "--trim",
                                       "--audit-db", str(db)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "25 frames" in result.output
    with AuditLog(db) as log:
        (session,) = log.sessions()
        assert [r.kind for r in log.records()] == ["session_start", "session_end"] and log.verify().ok
    assert f"audit: session {session.id[:8]}, watermark {session.watermark:08x}, recorded in {db}" in result.output
    assert detect_video(out).payload == session.watermark
    assert (session.transport, session.requester, session.client) == ("cli", getpass.getuser(), "local")
    assert session.portrait == "sample:astronaut" and session.portrait_sha256 == sha256_of(astronaut)
    assert session.consent == SAMPLE_CONSENT and isinstance(session.watermark, int)
    assert (session.frames, session.seconds, session.end_reason) == (25, 1.0, "completed")
    assert session.params["min_resolution"] == 256 and session.params["duration"] == 1.0 and session.params["trim"]


def test_generate_a_users_portrait_only_with_consent(portrait, speech_wav, tmp_path):
    out, db = tmp_path / "out.mp4", tmp_path / "audit.db"
    result = CliRunner().invoke(main, ["generate", str(portrait), str(speech_wav), "-o", str(out), "--audit-db",
                                       str(db)])  # fmt: skip
    assert result.exit_code == EXIT_BAD_INPUT and "error [consent_required]" in result.output
    assert "--consent" in result.output and not out.exists() and not db.exists()


@pytest.mark.parametrize(
    ("extra", "code"),
    [(["--duration", "9"], "duration_mismatch"), (["--duration", "1"], "duration_mismatch")],
    ids=["longer", "shorter"],
)
def test_generate_duration_mismatch_is_an_error_that_says_what_to_do(portrait, speech_wav, tmp_path, extra, code):
    result = CliRunner().invoke(main, ["generate", str(portrait), str(speech_wav), "-o", str(tmp_path / "o.mp4"),
                                       "--consent", *extra])  # fmt: skip
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
    db = tmp_path / "audit.db"
    for (image, sound, target), code in cases:
        result = CliRunner().invoke(main, ["generate", str(image), str(sound), "-o", str(target), "--consent",
                                           "--audit-db", str(db)])  # fmt: skip
        assert result.exit_code == EXIT_BAD_INPUT, (code, result.output)
        assert f"error [{code}]" in result.output
    with AuditLog(db) as log:  # each attempt is on record, with how it failed
        sessions = log.sessions()
        assert [s.end_reason for s in reversed(sessions)] == [f"error: {code}" for _, code in cases]
        assert all(s.frames == 0 and s.consent == CONSENT_ATTESTATION for s in sessions)
        assert sessions[-1].portrait_sha256 == sha256_of(flat)


def test_generate_rejects_out_of_range_parameters(portrait, speech_wav, tmp_path):
    for bad in (["--dynamic-scale", "5"], ["--fps", "200"], ["--lip-sync-offset-ms", "-900"], ["--duration", "0"]):
        result = CliRunner().invoke(main, ["generate", str(portrait), str(speech_wav), "-o", str(tmp_path / "o.mp4"),
                                           *bad])  # fmt: skip
        assert result.exit_code == 2 and "Invalid value" in result.output, bad


def test_generate_can_speak_text_with_the_embedded_tts(portrait, tmp_path):
    pytest.importorskip("sonic_rt.audio.tts")
    out = tmp_path / "hello.mp4"
    result = CliRunner().invoke(main, ["generate", str(portrait), "--say", "Hello there.", "-o", str(out),
                                       "--min-resolution", "128", "--consent"])  # fmt: skip
    if "tts_unavailable" in result.output:
        pytest.skip(result.output)
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1000
    bad = CliRunner().invoke(main, ["generate", str(portrait), "--say", "Hi.", "--voice", "xx-nope", "-o", str(out),
                                    "--consent"])  # fmt: skip
    assert bad.exit_code == EXIT_BAD_INPUT and "error [unknown_voice]" in bad.output


def test_generate_needs_audio_or_text_but_not_both(portrait, speech_wav, tmp_path):
    for args in ([], [str(speech_wav), "--say", "Hello."]):
        result = CliRunner().invoke(main, ["generate", str(portrait), *args, "-o", str(tmp_path / "o.mp4")])
        assert result.exit_code == 2 and "either an AUDIO file or --say" in result.output


def test_generate_with_the_phonemes_of_the_audio(speech_wav, sentence, tmp_path):
    n = len(sentence) * 1000 // 16000
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"format": "arpabet", "marks": [{"phone": "M", "start_ms": 0, "end_ms": n}]}))
    out = tmp_path / "out.mp4"
    args = ["generate", "sample:astronaut", str(speech_wav), "-o", str(out), "--min-resolution", "128"]
    result = CliRunner().invoke(main, [*args, "--phonemes", str(good)])
    assert result.exit_code == 0, result.output
    assert out.exists()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "arpabet", "marks": [{"phone": "M", "start_ms": 0, "end_ms": n + 900}]}))
    result = CliRunner().invoke(main, [*args, "--phonemes", str(bad)])
    assert result.exit_code == EXIT_BAD_INPUT and "error [bad_timings]" in result.output
    assert "past the end" in result.output
    result = CliRunner().invoke(main, ["generate", "sample:astronaut", "--say", "Hi.", "-o", str(out),
                                       "--phonemes", str(good)])  # fmt: skip
    assert result.exit_code == 2 and "--phonemes goes with an AUDIO file" in result.output
