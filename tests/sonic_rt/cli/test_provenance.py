"""``sonic-rt audit`` and ``watermark`` (``sonic_rt.cli.provenance``)."""

import json
import sqlite3

import numpy as np
from click.testing import CliRunner
from PIL import Image

from sonic_rt.cli import main
from sonic_rt.cli.options import EXIT_BAD_INPUT
from sonic_rt.cli.provenance import EXIT_NO_WATERMARK
from sonic_rt.provenance.audit import CONSENT_ATTESTATION, SAMPLE_CONSENT, AuditLog


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
