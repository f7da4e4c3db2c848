"""The audit log: records chain by HMAC, and every kind of tampering is found and named."""

from __future__ import annotations

import sqlite3
import stat
import threading
from datetime import UTC, datetime, timedelta

import pytest

from sonic_rt.errors import AuditError, AuditKeyMismatch, AuditKeyMissing, SonicError
from sonic_rt.provenance import audit, chain, payload
from sonic_rt.provenance.audit import AuditLog

START = dict(transport="websocket", requester="alice", client="127.0.0.1", portrait="sample:astronaut",
             portrait_sha256="ab" * 32, consent=audit.SAMPLE_CONSENT, params={"fps": 25}, record=False)  # fmt: skip


@pytest.fixture
def db(tmp_path):
    return tmp_path / "audit.db"


@pytest.fixture
def log(db):
    with AuditLog(db) as log:
        for i in range(10):
            log.append("server_start", version="0.1.0", run=i)
        yield log


def tamper(db) -> sqlite3.Connection:
    """A plain connection to the database with the append-only triggers dropped, as an editor would."""
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("DROP TRIGGER records_no_update")
    con.execute("DROP TRIGGER records_no_delete")
    return con


def problems(log: AuditLog) -> list[str]:
    """The problems besides the dropped triggers (which every tampering here starts with)."""
    found = log.verify()
    assert not found.ok
    dropped = [p for p in found.problems if "trigger" in p]
    assert len(dropped) == 2 and "records_no_update that refuses UPDATE" in dropped[0]
    return [p for p in found.problems if "trigger" not in p]


def test_records_chain_and_verify(log, db):
    records = log.records()
    assert [r.seq for r in records] == list(range(1, 11))
    assert records[0].prev == chain.GENESIS and all(b.prev == a.mac for a, b in zip(records, records[1:], strict=False))
    assert records[3].body == {"version": "0.1.0", "run": 3} and records[3].at.endswith("+00:00")
    result = log.verify()
    assert result.ok and result.records == 10 and (result.head_seq, result.head_mac) == (10, records[-1].mac)
    stored = sqlite3.connect(db).execute("SELECT body FROM records WHERE seq = 4").fetchone()[0]
    assert stored == '{"run":3,"version":"0.1.0"}'  # canonical JSON: sorted keys, compact
    assert stat.S_IMODE(chain.key_path(db).stat().st_mode) == 0o600 and len(chain.key_path(db).read_bytes()) == 32
    with AuditLog(db) as again:  # reopened: the same key, numbering goes on
        assert again.append("server_stop").seq == 11 and again.verify().ok


def test_commits_are_durable_wal_with_full_sync(log, db):
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert log._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: the WAL is fsynced at each commit


def test_triggers_refuse_update_and_delete(log, db):
    con = sqlite3.connect(db)
    for statement in ("UPDATE records SET kind = 'x' WHERE seq = 2", "DELETE FROM records WHERE seq = 2"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute(statement)
    assert log.verify().ok


@pytest.mark.parametrize(
    ("column", "value"),
    [("body", '{"run":99,"version":"0.1.0"}'), ("kind", "server_stop"), ("at", "2020-01-01T00:00:00.000000+00:00"),
     ("session", "someone-else"), ("prev", "f" * 64)],
)  # fmt: skip
def test_an_edit_of_any_field_names_the_record(log, db, column, value):
    tamper(db).execute(f"UPDATE records SET {column} = ? WHERE seq = 4", (value,))
    assert problems(log) == ["record 4 was edited or forged (its MAC does not match)"]


def test_an_edit_that_replaces_the_mac_too_is_found_twice(log, db):
    tamper(db).execute("UPDATE records SET body = '{}', mac = ? WHERE seq = 4", ("e" * 64,))
    assert problems(log) == [
        "record 4 was edited or forged (its MAC does not match)",
        "record 5 does not follow record 4 (its prev does not match): inserted or reordered",
    ]


def test_deleted_records_are_named(log, db):
    con = tamper(db)
    con.execute("DELETE FROM records WHERE seq = 7")
    con.execute("DELETE FROM records WHERE seq IN (2, 3)")
    assert problems(log) == ["records 2-3 are missing (seq jumps 1 -> 4)", "record 7 is missing (seq jumps 6 -> 8)"]


def test_a_swap_is_named_as_moved_records(log, db):
    con = tamper(db)
    rows = {seq: con.execute("SELECT at, kind, session, body, prev, mac FROM records WHERE seq = ?", (seq,)).fetchone()
            for seq in (5, 6)}  # fmt: skip
    for seq, other in ((5, 6), (6, 5)):
        con.execute("UPDATE records SET at=?, kind=?, session=?, body=?, prev=?, mac=? WHERE seq = ?",
                    (*rows[other], seq))  # fmt: skip
    assert problems(log) == [
        "record 5 holds record 6 (moved from its place): records were inserted, removed or reordered",
        "record 6 holds record 5 (moved from its place): records were inserted, removed or reordered",
        "record 7 does not follow record 6 (its prev does not match): inserted or reordered",
    ]


def test_an_insertion_in_the_middle_is_named(log, db):
    con = tamper(db)
    con.execute("UPDATE records SET seq = -seq - 1 WHERE seq > 5")  # make room at 6 (two steps: seq is unique)
    con.execute("UPDATE records SET seq = -seq WHERE seq < 0")
    prev = con.execute("SELECT mac FROM records WHERE seq = 5").fetchone()[0]
    forged = (6, "2030-01-01T00:00:00.000000+00:00", "session_start", "fake", "{}", prev, "0" * 64)
    con.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", forged)
    found = problems(log)
    assert found[0] == "record 6 was edited or forged (its MAC does not match)"
    assert found[1:6] == [f"record {seq} holds record {seq - 1} (moved from its place): records were inserted, "
                          "removed or reordered" for seq in range(7, 12)]  # fmt: skip
    assert found[6:] == ["the log goes on to 11 past its head at 10: records were added without the key"]


def test_a_record_added_at_the_end_without_the_key_is_named(log, db):
    last = log.records()[-1]
    forged = (11, last.at, "session_end", "x", "{}", last.mac, "1" * 64)
    tamper(db).execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", forged)
    assert problems(log) == [
        "record 11 was edited or forged (its MAC does not match)",
        "the log goes on to 11 past its head at 10: records were added without the key",
    ]


def test_truncation_of_the_tail_is_found_and_stays_found_after_more_appends(log, db):
    tamper(db).execute("DELETE FROM records WHERE seq > 8")
    assert problems(log) == ["the log ends at 8 but its head says 10: records were removed from the end"]
    log.append("server_stop")  # chained after the head: the gap stays
    assert problems(log) == [
        "records 9-10 are missing (seq jumps 8 -> 11)",
        "record 11 notes tampering found when it was written: the log ends at 8 but its head says 10: records "
        "were removed from the end",
    ]


def test_truncation_with_the_head_removed_leaves_a_note_in_the_chain(log, db):
    con = tamper(db)
    con.execute("DELETE FROM records WHERE seq > 8")
    con.execute("DELETE FROM head")
    assert problems(log) == ["the head anchor is missing: records may have been removed from the end"]
    log.append("server_stop")
    assert problems(log) == ["record 9 notes tampering found when it was written: the head anchor is missing: "
                             "records may have been removed from the end"]  # fmt: skip


def test_a_forged_head_is_found(log, db):
    tamper(db).execute("UPDATE head SET seq = 8")
    assert problems(log) == ["the head anchor was edited (its MAC does not match)"]


def test_the_key_must_be_there_and_be_the_logs_own(log, db, tmp_path):
    log.close()
    key = chain.key_path(db)
    saved = key.read_bytes()
    key.unlink()
    with pytest.raises(AuditKeyMissing, match="has records but its key .* is missing"):
        AuditLog(db)
    assert not key.exists()  # no new key is made for a log with records
    key.write_bytes(b"\x01" * 32)
    with pytest.raises(AuditKeyMismatch, match="does not belong to the audit log"):
        AuditLog(db)
    key.write_bytes(b"short")
    with pytest.raises(AuditError, match="not an audit key"):
        AuditLog(db)
    key.write_bytes(saved)
    with AuditLog(db) as again:
        assert again.verify().ok


def test_bad_places_and_bad_records_are_clear_errors(tmp_path, log):
    with pytest.raises(AuditError, match="no such folder"):
        AuditLog(tmp_path / "nowhere" / "audit.db")
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(AuditError, match="cannot open the audit log"):
        AuditLog(tmp_path / "junk.db")
    with pytest.raises(ValueError, match="record kind"):
        log.append("Session Start")
    with pytest.raises(TypeError, match="JSON values only"):
        log.append("portrait", image=b"bytes")
    with pytest.raises(ValueError, match="transport"):
        log.start_session("s", **{**START, "transport": "pigeon"})
    with pytest.raises(ValueError, match="time zone"):
        log.usage_seconds("alice", datetime.now())
    assert log.verify().ok and log.verify().records == 10


def test_sessions_join_start_and_end(log):
    start = log.start_session("s1", **START)
    log.end_session("s1", frames=50, seconds=2.0, reason=audit.STOPPED)
    log.start_session("s2", **{**START, "transport": "render", "requester": "bob"})
    newest, oldest = log.sessions()
    assert (newest.id, newest.transport, newest.requester, newest.ended, newest.end_reason) == (
        "s2", "render", "bob", None, None)  # fmt: skip
    assert oldest.frames == 50 and oldest.seconds == 2.0 and oldest.end_reason == "stopped" and oldest.ended
    assert oldest.watermark == start.body["watermark"] and oldest.params == {"fps": 25}
    assert oldest.consent == audit.SAMPLE_CONSENT and oldest.client == "127.0.0.1"
    assert [s.id for s in log.sessions(limit=1)] == ["s2"]
    assert log.sessions(since=datetime.now(UTC) + timedelta(minutes=1)) == []
    assert log.find_watermark(start.body["watermark"]).id == "s1"
    unused = next(w for w in range(2**32) if w not in {s.watermark for s in log.sessions()})
    assert log.find_watermark(unused) is None
    with pytest.raises(ValueError, match="watermark payload"):
        log.find_watermark(2**32)
    assert log.verify().ok


def test_watermark_ids_are_never_reused(log, monkeypatch):
    used = log.start_session("s1", **START).body["watermark"]
    drawn = iter([used, used, used + 1, used + 1, used + 2])
    monkeypatch.setattr(payload.secrets, "randbits", lambda bits: next(drawn))
    assert log.new_watermark_id() == used + 1  # the log's own payload is skipped
    assert log.start_session("s2", **START).body["watermark"] == used + 2  # and one handed out already
    monkeypatch.undo()
    ids = {log.new_watermark_id() for _ in range(200)}
    assert len(ids) == 200 and all(0 <= i < 2**32 for i in ids)


def test_usage_seconds_sums_a_requesters_ended_sessions(log):
    before = datetime.now(UTC)
    for session, who, seconds in (("a", "alice", 2.5), ("b", "alice", 4.0), ("c", "bob", 9.0)):
        log.start_session(session, **{**START, "requester": who})
        log.end_session(session, frames=int(seconds * 25), seconds=seconds, reason=audit.STOPPED)
    log.start_session("d", **START)  # still open: not counted
    assert log.usage_seconds("alice", before) == 6.5 and log.usage_seconds("bob", before) == 9.0
    assert log.usage_seconds("carol", before) == 0.0
    assert log.usage_seconds("alice", datetime.now(UTC) + timedelta(seconds=1)) == 0.0


def test_recover_ends_the_sessions_of_owners_that_died(db):
    with AuditLog(db) as running:
        running.start_session("live", **START)
        crashed = AuditLog(db)
        crashed.start_session("lost", **START)
        crashed.close()  # its owner lock is gone, as when a process dies; its session was never ended
        with AuditLog(db) as restarted:
            assert restarted.recover() == ["lost"]
            assert restarted.recover() == []
            by_id = {s.id: s for s in restarted.sessions()}
            assert by_id["lost"].end_reason == audit.ABNORMAL and by_id["lost"].frames is None
            assert by_id["live"].ended is None  # its owner is still running
            assert restarted.verify().ok


def test_session_block_ends_the_session_however_it_ends(log):
    with log.session("ok", **START) as opened:
        opened.done(25, 1.0)
    for session, error in (("bad", SonicError("x")), ("cut", KeyboardInterrupt()), ("bug", RuntimeError("x"))):
        with pytest.raises(type(error)), log.session(session, **START):
            raise error
    reasons = {s.id: (s.end_reason, s.frames) for s in log.sessions()}
    assert reasons == {"ok": ("completed", 25), "bad": ("error: error", 0), "cut": ("stopped", 0),
                       "bug": ("error: internal", 0)}  # fmt: skip


def test_threads_and_several_logs_on_one_file_keep_one_chain(log, db):
    with AuditLog(db) as other:  # as another process would
        def write(target):
            for i in range(20):
                target.append("portrait", n=i)

        threads = [threading.Thread(target=write, args=(t,)) for t in (log, log, other, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert other.verify().ok
    result = log.verify()
    assert result.ok and result.records == 90


def test_default_path(tmp_path, monkeypatch):
    monkeypatch.setenv("SONIC_RT_HOME", str(tmp_path / "home"))
    assert audit.default_path() == tmp_path / "home" / "audit.db" and (tmp_path / "home").is_dir()
    monkeypatch.delenv("SONIC_RT_HOME")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert audit.default_path() == tmp_path / "state" / "sonic-rt" / "audit.db"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert audit.default_path() == tmp_path / "user" / ".local" / "state" / "sonic-rt" / "audit.db"
