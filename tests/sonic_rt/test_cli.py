import getpass
import json
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from sonic_rt.cli import EXIT_BAD_INPUT, EXIT_NO_WATERMARK, main
from sonic_rt.provenance.audit import CONSENT_ATTESTATION, SAMPLE_CONSENT, AuditLog
from sonic_rt.provenance.watermark import detect_video
from sonic_rt.render.identity import sha256_of
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


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory, sentence):
    from tests.conftest import write_wav

    return write_wav(tmp_path_factory.mktemp("cli-audio") / "speech.wav", sentence)


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


def test_audit_verify_and_show(tmp_path):
    db = tmp_path / "audit.db"
    with AuditLog(db) as log:
        log.start_session("4d2a9c0e5b", transport="render", requester="alice", client="10.0.0.7",
                          portrait="p1", portrait_sha256="c0ffee" * 10 + "abcd", consent=CONSENT_ATTESTATION,
                          params={"fps": 25}, record=False)  # fmt: skip
        log.end_session("4d2a9c0e5b", frames=50, seconds=2.0, reason="completed")
        log.start_session("77ab", transport="websocket", requester="bob", client="::1", portrait="sample:astronaut",
                          portrait_sha256=None, consent=SAMPLE_CONSENT, params={}, record=True)  # fmt: skip
        watermark = log.sessions()[-1].watermark
        head = log.records()[-1].mac
    ok = CliRunner().invoke(main, ["audit", "verify", "--db", str(db)])
    assert ok.exit_code == 0 and ok.output.strip() == f"OK: 3 records, head #3 {head[:16]}"
    shown = CliRunner().invoke(main, ["audit", "show", "--db", str(db)])
    assert shown.exit_code == 0, shown.output
    header, newest, oldest = shown.output.strip().splitlines()
    assert header.split()[:3] == ["session", "started", "(UTC)"]
    assert newest.split()[0] == "77ab" and newest.split()[-1] == "open"
    assert oldest.split()[:1] + oldest.split()[3:] == ["4d2a9c0e", "render", "alice", "10.0.0.7", "c0ffeec0ffee",
                                                       f"{watermark:08x}", "50", "2.00", "completed"]  # fmt: skip
    listed = json.loads(CliRunner().invoke(main, ["audit", "show", "--db", str(db), "--json", "--limit", "1"]).output)
    assert [s["id"] for s in listed] == ["77ab"] and listed[0]["requester"] == "bob"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("DROP TRIGGER records_no_update")
    con.execute("UPDATE records SET body = replace(body, 'alice', 'mallory') WHERE seq = 1")
    bad = CliRunner().invoke(main, ["audit", "verify", "--db", str(db)])
    assert bad.exit_code == 1 and "FAILED: 2 problem(s)" in bad.output
    assert "record 1 was edited or forged" in bad.output and "records_no_update" in bad.output
    missing = CliRunner().invoke(main, ["audit", "verify", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 1 and "no audit log at" in missing.output


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


def test_watermark_detect_finds_the_run_in_the_log_or_says_there_is_none(speech_wav, tmp_path, astronaut):
    out, db = tmp_path / "out.mp4", tmp_path / "audit.db"
    args = ["generate", "sample:astronaut", str(speech_wav), "-o", str(out), "--label", "--min-resolution", "256"]
    made = CliRunner().invoke(main, [*args, "--duration", "2", "--trim", "--audit-db", str(db)])
    assert made.exit_code == 0, made.output
    with AuditLog(db) as log:
        (session,) = log.sessions()
    assert session.params["label"] is True
    found = CliRunner().invoke(main, ["watermark", "detect", str(out), "--db", str(db)])
    assert found.exit_code == 0, found.output
    assert f"watermark {session.watermark:08x}" in found.output and session.id in found.output
    assert "cli" in found.output and "built-in sample" in found.output
    elsewhere = CliRunner().invoke(main, ["watermark", "detect", str(out), "--db", str(tmp_path / "other.db")])
    assert elsewhere.exit_code == 0 and "no session with this watermark" in elsewhere.output

    from sonic_rt.media.mp4 import Mp4Writer

    plain = tmp_path / "plain.mp4"
    with Mp4Writer(plain, 256, 25) as writer:
        for _ in range(25):
            writer.write_frame(np.asarray(Image.fromarray(astronaut).resize((256, 256))))
    none = CliRunner().invoke(main, ["watermark", "detect", str(plain), "--db", str(db)])
    assert none.exit_code == EXIT_NO_WATERMARK and "no sonic-rt watermark" in none.output
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    broken = CliRunner().invoke(main, ["watermark", "detect", str(bad)])
    assert broken.exit_code == EXIT_BAD_INPUT and "unreadable_video" in broken.output


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
