"""The tamper-evident audit log: who generated what, when, from which portrait, with whose consent.

Records live in SQLite (WAL with ``synchronous=FULL``: a record is on disk before ``append``
returns), in one table numbered 1, 2, 3 ... Each record carries
``mac = HMAC-SHA256(key, canonical JSON of [seq, at, kind, session, body, prev])``, where ``prev``
is the previous record's MAC (64 zeros for the first), so the records form a chain: an edit, a
deletion, an insertion or a swap breaks it where it was made. The key is a random 32-byte file
beside the database (``<db>.key``, mode 0600): with a plain hash anyone could recompute the
chain after an edit; without the key they cannot. A head anchor (the last seq and MAC, itself
MACed) is written in the same transaction as each record, so records removed from the end show
too, and triggers refuse UPDATE and DELETE (defence in depth: ``verify`` does not rely on them,
and reports them missing).

What it cannot catch: a rollback of the whole database to an earlier copy of itself (records and
head together; keep the head that ``sonic-rt audit verify`` prints somewhere else to compare
with), and anything done by someone who holds the key file, who can write a new valid chain.

Sessions are started by an *owner* (one ``AuditLog`` in one process) that holds an ``flock`` on
a file in ``<db>.owners/`` while it lives; the kernel lets go of it when the process dies, so
``recover`` ends the open sessions of crashed owners only, never those of a server or a
``sonic-rt generate`` still running on the same log.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .config import state_dir
from .errors import AuditError, AuditKeyMismatch, AuditKeyMissing, SonicError
from .payload import PAYLOAD_BITS, new_payload

KEY_BYTES = 32
GENESIS = "0" * 64  # the ``prev`` of record 1
BUSY_TIMEOUT_S = 30.0  # another process's write in progress: wait this long for it
MOVED_SEARCH = 8  # a record that fails its MAC is tried at up to this many places either side

# record kinds
SERVER_START = "server_start"
SERVER_STOP = "server_stop"
PORTRAIT = "portrait"
SESSION_START = "session_start"
SESSION_END = "session_end"
TAMPERING_NOTED = "tampering_noted"  # written by ``append`` when the head did not match the chain's end
# the last two: the avatars of voice agents (integrations/), their sessions run in the agent's process
TRANSPORTS = ("websocket", "webrtc", "render", "cli", "pipecat", "livekit")

CONSENT_ATTESTATION = (
    "The requester attests that they may use this face and that the person shown agreed to it being animated."
)
SAMPLE_CONSENT = "built-in sample (public domain)"

# how sessions end
STOPPED = "stopped"  # the client asked
DISCONNECTED = "disconnected"
COMPLETED = "completed"  # a render or a command that ran to its end
SERVER_STOPPED = "server_stopped"  # a clean shutdown ended it
ABNORMAL = "abnormal: the server stopped without ending it"  # found open by ``recover``

_KIND = re.compile(r"[a-z][a-z_]{0,39}")
_TRIGGERS = {"records_no_update": "UPDATE", "records_no_delete": "DELETE"}
_SCHEMA = [
    """CREATE TABLE records (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        session TEXT,
        body TEXT NOT NULL,
        prev TEXT NOT NULL,
        mac TEXT NOT NULL
    )""",
    "CREATE INDEX records_session ON records (session, kind)",
    "CREATE INDEX records_watermark ON records (json_extract(body, '$.watermark')) WHERE kind = 'session_start'",
    "CREATE TABLE head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, mac TEXT NOT NULL, "
    "tag TEXT NOT NULL)",
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    *(f"CREATE TRIGGER {name} BEFORE {verb} ON records "
      f"BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: records cannot be changed or removed'); END"
      for name, verb in _TRIGGERS.items()),
]  # fmt: skip
_COLUMNS = "seq, at, kind, session, body, prev, mac"
_SUMMARY = """
    SELECT s.session, s.at, s.body, e.at, e.body FROM records s
    LEFT JOIN records e ON e.seq = (
        SELECT MIN(seq) FROM records WHERE session = s.session AND kind = 'session_end')
    WHERE s.kind = 'session_start'"""
_WATERMARK_USED = (
    "SELECT 1 FROM records WHERE kind = 'session_start' AND json_extract(body, '$.watermark') = ? LIMIT 1"
)


@dataclass(frozen=True)
class Record:
    """One record as stored: ``body`` is the decoded JSON object."""

    seq: int
    at: str  # UTC, ISO 8601
    kind: str
    session: str | None
    body: dict
    prev: str
    mac: str

    @classmethod
    def from_row(cls, row: tuple) -> Record:
        seq, at, kind, session, body, prev, mac = row
        return cls(seq, at, kind, session, json.loads(body), prev, mac)


@dataclass(frozen=True)
class Verification:
    """What ``verify`` found: ``problems`` name each record (by seq) that was tampered with."""

    records: int
    head_seq: int | None
    head_mac: str | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class SessionSummary:
    """A session's start and end records, joined (``ended`` and the rest None while it is open)."""

    id: str
    started: str
    ended: str | None
    transport: str | None
    requester: str | None
    client: str | None
    portrait: str | None
    portrait_sha256: str | None
    consent: str | None
    watermark: int | None
    frames: int | None
    seconds: float | None
    end_reason: str | None
    params: dict


@dataclass
class OpenSession:
    """A session started by ``AuditLog.session``; the block calls ``done`` with what it made."""

    id: str
    watermark: int
    frames: int = 0
    seconds: float = 0.0

    def done(self, frames: int, seconds: float) -> None:
        self.frames, self.seconds = frames, seconds


def default_path() -> Path:
    """``audit.db`` in ``config.state_dir()``; the folder is created."""
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "audit.db"


def key_path(db: Path) -> Path:
    return db.with_name(db.name + ".key")


def canonical(value) -> str:
    """Canonical JSON: sorted keys, no spaces, no NaN; a value JSON cannot hold is a ``TypeError``."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"an audit record holds JSON values only: {err}") from None


def utc_now() -> str:
    return _iso(datetime.now(UTC))


def end_reason(error: BaseException | None) -> str:
    """The ``session_end`` reason for a session that ended with ``error`` (None: it completed)."""
    if error is None:
        return COMPLETED
    if isinstance(error, KeyboardInterrupt):
        return STOPPED
    if isinstance(error, SonicError):
        return f"error: {error.code}"
    return "error: bad_params" if isinstance(error, ValueError | TypeError) else "error: internal"


class AuditLog:
    """An append-only, tamper-evident log in one SQLite file; thread-safe, and several processes
    may write the same file (each append is one ``BEGIN IMMEDIATE`` transaction)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.key_path = key_path(self.path)
        if not self.path.parent.is_dir():
            raise AuditError(f"cannot keep the audit log at {self.path}: no such folder {self.path.parent}")
        self._lock = threading.Lock()
        self._issued: set[int] = set()
        self._owner = _Owner(self.path.with_name(self.path.name + ".owners"))
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                       timeout=BUSY_TIMEOUT_S)  # fmt: skip
        except sqlite3.Error as err:
            raise AuditError(f"cannot open the audit log {self.path}: {err}") from None
        try:
            self._open()
        except BaseException:
            self._db.close()
            raise

    def _open(self) -> None:
        """Settings, the schema (on first use), the key; in one transaction."""
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self._write():
                if not self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'records'").fetchone():
                    for statement in _SCHEMA:
                        self._db.execute(statement)
                has_records = self._db.execute("SELECT 1 FROM records LIMIT 1").fetchone() is not None
                self._key = _load_key(self.key_path, self.path, has_records)
                self._check_key()
        except sqlite3.DatabaseError as err:
            raise AuditError(f"cannot open the audit log {self.path}: {err}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._owner.release()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- writing ---------------------------------------------------------------------------

    def append(self, kind: str, session: str | None = None, **body) -> Record:
        """Append one record and return it once it is on disk."""
        _check_names(kind, session)
        text = canonical(body)
        with self._write():
            return self._insert_next(kind, session, text)

    def start_session(self, session: str, *, transport: str, requester: str, client: str | None, portrait: str,
                      portrait_sha256: str | None, consent: str, params: dict, record: bool) -> Record:  # fmt: skip
        """Append ``session_start`` with a watermark payload no session in the log has had."""
        _check_names(SESSION_START, session)
        if session is None:
            raise ValueError("a session_start needs a session id")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
        body = {"transport": transport, "requester": requester, "client": client, "portrait": portrait,
                "portrait_sha256": portrait_sha256, "consent": consent, "params": params, "record": record}  # fmt: skip
        canonical(body)  # a bad body fails before a watermark is taken
        with self._write():
            body.update(owner=self._owner.claim(), watermark=self._new_watermark())
            return self._insert_next(SESSION_START, session, canonical(body))

    def end_session(self, session: str, *, frames: int | None, seconds: float | None, reason: str) -> Record:
        return self.append(SESSION_END, session, frames=frames, seconds=seconds, reason=reason)

    @contextlib.contextmanager
    def session(self, session: str, **start) -> Iterator[OpenSession]:
        """``start_session``, then exactly one ``session_end`` however the block ends: ``completed``
        with what the block passed to ``done``, or the reason its exception gives (``end_reason``)."""
        record = self.start_session(session, **start)
        opened = OpenSession(session, record.body["watermark"])
        try:
            yield opened
        except BaseException as err:
            self.end_session(session, frames=opened.frames, seconds=opened.seconds, reason=end_reason(err))
            raise
        self.end_session(session, frames=opened.frames, seconds=opened.seconds, reason=COMPLETED)

    def new_watermark_id(self) -> int:
        """A random 32-bit payload that no session in the log has had, nor this log handed out."""
        with self._lock:
            return self._new_watermark()

    def recover(self) -> list[str]:
        """End every session whose owner died before ending it (``ABNORMAL``, frames and seconds
        unknown); returns their ids. Sessions of owners still running are left alone."""
        query = ("SELECT s.session, json_extract(s.body, '$.owner') FROM records s WHERE s.kind = 'session_start' "
                 "AND NOT EXISTS (SELECT 1 FROM records e WHERE e.kind = 'session_end' AND e.session = s.session) "
                 "ORDER BY s.seq")  # fmt: skip
        ended = []
        with self._write():
            for session, owner in self._db.execute(query).fetchall():
                if not self._owner.alive(owner):
                    body = canonical({"frames": None, "seconds": None, "reason": ABNORMAL})
                    self._insert_next(SESSION_END, session, body)
                    ended.append(session)
        self._owner.sweep()
        return ended

    # --- reading ---------------------------------------------------------------------------

    def records(self) -> list[Record]:
        with self._lock:
            return [Record.from_row(r) for r in self._db.execute(f"SELECT {_COLUMNS} FROM records ORDER BY seq")]

    def sessions(self, limit: int = 20, since: datetime | None = None) -> list[SessionSummary]:
        """The newest ``limit`` sessions (started at or after ``since``), newest first."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        after = _iso(since) if since is not None else ""
        with self._lock:
            rows = self._db.execute(_SUMMARY + " AND s.at >= ? ORDER BY s.seq DESC LIMIT ?", (after, limit)).fetchall()
        return [_summary(*row) for row in rows]

    def find_watermark(self, payload: int) -> SessionSummary | None:
        """The session whose frames carry ``payload``, or None."""
        if not isinstance(payload, int) or not 0 <= payload < 2**PAYLOAD_BITS:
            raise ValueError(f"a watermark payload is an integer in [0, 2**{PAYLOAD_BITS}), got {payload!r}")
        with self._lock:
            row = self._db.execute(_SUMMARY + " AND json_extract(s.body, '$.watermark') = ? ORDER BY s.seq LIMIT 1",
                                   (payload,)).fetchone()  # fmt: skip
        return _summary(*row) if row else None

    def usage_seconds(self, requester: str, since: datetime) -> float:
        """Seconds of video made by ``requester``'s sessions that ended at or after ``since``."""
        query = ("SELECT COALESCE(SUM(json_extract(e.body, '$.seconds')), 0) FROM records e "
                 "JOIN records s ON s.session = e.session AND s.kind = 'session_start' "
                 "WHERE e.kind = 'session_end' AND e.at >= ? AND json_extract(s.body, '$.requester') = ?")  # fmt: skip
        with self._lock:
            return float(self._db.execute(query, (_iso(since), requester)).fetchone()[0])

    def verify(self) -> Verification:
        """Check every record's MAC, the chain from each record to the next, the head anchor and the
        triggers; each problem names the record where it is."""
        with self._lock:
            self._db.execute("BEGIN")  # one snapshot: the records and the head as one writer left them
            try:
                problems = self._missing_triggers()
                checker = _ChainCheck(self._mac)
                for row in self._db.execute(f"SELECT {_COLUMNS} FROM records ORDER BY seq"):
                    problems += checker.check(row)
                head = self._head()
            finally:
                self._db.execute("COMMIT")
        problems += self._head_problems(head, checker.last)
        return Verification(checker.count, head[0] if head else None, head[1] if head else None, problems)

    # --- inside ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """The lock, and one write transaction (other processes wait for it: BEGIN IMMEDIATE)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _insert_next(self, kind: str, session: str | None, body: str) -> Record:
        """Insert after the chain's end (in a write transaction). If the head does not match that end,
        the log was tampered with: a ``tampering_noted`` record goes first, so the evidence stays."""
        head = self._head()
        last = self._db.execute("SELECT seq, mac FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = _next_place(head if head and self._head_ok(head) else None, last)
        if found := self._head_problems(head, last):
            prev = self._insert(seq, TAMPERING_NOTED, None, canonical({"found": "; ".join(found)}), prev).mac
            seq += 1
        record = self._insert(seq, kind, session, body, prev)
        self._db.execute("INSERT OR REPLACE INTO head (id, seq, mac, tag) VALUES (1, ?, ?, ?)",
                         (seq, record.mac, self._head_tag(seq, record.mac)))  # fmt: skip
        return record

    def _insert(self, seq: int, kind: str, session: str | None, body: str, prev: str) -> Record:
        at = utc_now()
        mac = self._mac(seq, at, kind, session, body, prev)
        self._db.execute(f"INSERT INTO records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (seq, at, kind, session, body, prev, mac))  # fmt: skip
        return Record(seq, at, kind, session, json.loads(body), prev, mac)

    def _new_watermark(self) -> int:
        while True:
            payload = new_payload()
            if payload not in self._issued and not self._db.execute(_WATERMARK_USED, (payload,)).fetchone():
                self._issued.add(payload)
                return payload

    def _mac(self, seq: int, at: str, kind: str, session: str | None, body: str, prev: str) -> str:
        message = canonical([seq, at, kind, session, body, prev]).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _head_tag(self, seq: int, mac: str) -> str:
        return hmac.new(self._key, canonical(["head", seq, mac]).encode(), hashlib.sha256).hexdigest()

    def _head(self) -> tuple[int, str, str] | None:
        return self._db.execute("SELECT seq, mac, tag FROM head WHERE id = 1").fetchone()

    def _head_ok(self, head: tuple[int, str, str]) -> bool:
        seq, mac, tag = head
        return hmac.compare_digest(tag, self._head_tag(seq, mac))

    def _head_problems(self, head: tuple[int, str, str] | None, last: tuple[int, str] | None) -> list[str]:
        """How the head anchor disagrees with the chain's end ``(seq, mac)``, if it does."""
        if head is None:
            return ["the head anchor is missing: records may have been removed from the end"] if last else []
        seq, mac, _ = head
        if not self._head_ok(head):
            return ["the head anchor was edited (its MAC does not match)"]
        if last is None:
            return [f"the log is empty but its head says {seq}: every record was removed"]
        if last[0] < seq:
            return [f"the log ends at {last[0]} but its head says {seq}: records were removed from the end"]
        if last[0] > seq:
            return [f"the log goes on to {last[0]} past its head at {seq}: records were added without the key"]
        if not hmac.compare_digest(last[1], mac):
            return [f"record {seq} is not the one its head names (their MACs differ): the end was replaced"]
        return []

    def _missing_triggers(self) -> list[str]:
        present = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        return [f"the trigger {name} that refuses {verb} on records was dropped"
                for name, verb in _TRIGGERS.items() if name not in present]  # fmt: skip

    def _check_key(self) -> None:
        """The key must be this log's: its fingerprint is kept in the database (in a write transaction)."""
        fingerprint = hmac.new(self._key, b"sonic-rt audit key", hashlib.sha256).hexdigest()
        row = self._db.execute("SELECT value FROM meta WHERE name = 'key'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta (name, value) VALUES ('key', ?)", (fingerprint,))
        elif not hmac.compare_digest(row[0], fingerprint):
            raise AuditKeyMismatch(f"the key file {self.key_path} does not belong to the audit log {self.path} "
                                   "(its fingerprint differs): nothing in the log would verify with it")  # fmt: skip


class _ChainCheck:
    """Walks the records in seq order, naming each one that breaks the chain."""

    def __init__(self, mac) -> None:
        self._mac = mac
        self.count = 0
        self.last: tuple[int, str] | None = None

    def check(self, row: tuple) -> list[str]:
        seq, at, kind, session, body, prev, mac = row
        last_seq, last_mac = self.last or (0, GENESIS)
        self.count += 1
        self.last = (seq, mac)
        if not hmac.compare_digest(mac, self._mac(seq, at, kind, session, body, prev)):
            moved = self._original_place(row)
            if moved is None:
                return [f"record {seq} was edited or forged (its MAC does not match)"]
            return [f"record {seq} holds record {moved} (moved from its place): records were inserted, removed "
                    "or reordered"]  # fmt: skip
        problems = []
        if seq > last_seq + 1:
            gone = f"record {last_seq + 1} is" if seq == last_seq + 2 else f"records {last_seq + 1}-{seq - 1} are"
            problems.append(f"{gone} missing (seq jumps {last_seq} -> {seq})")
        elif not hmac.compare_digest(prev, last_mac):
            problems.append(f"record {seq} does not follow record {last_seq} (its prev does not match): "
                            "inserted or reordered")  # fmt: skip
        if kind == TAMPERING_NOTED:
            problems.append(f"record {seq} notes tampering found when it was written: {json.loads(body)['found']}")
        return problems

    def _original_place(self, row: tuple) -> int | None:
        """The seq at which this record's MAC holds, if it is a genuine record moved a few places."""
        seq, *rest, mac = row
        for distance in range(1, MOVED_SEARCH + 1):
            for place in (seq - distance, seq + distance):
                if place >= 1 and hmac.compare_digest(mac, self._mac(place, *rest)):
                    return place
        return None


class _Owner:
    """This log's claim on the sessions it starts: a file in ``folder`` that it holds an ``flock``
    on while it lives; the kernel releases the lock when the process dies, however it dies."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.id = uuid.uuid4().hex
        self._fd: int | None = None

    def claim(self) -> str:
        """Take the lock (once): the file appears under its name only when already locked."""
        if self._fd is None:
            self.folder.mkdir(exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".new-")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(temp, self.folder / self.id)
            self._fd = fd
        return self.id

    def alive(self, owner: str | None) -> bool:
        """Whether ``owner`` (an id from a ``session_start``) still holds its lock."""
        if owner == self.id:
            return self._fd is not None
        if not owner or not re.fullmatch(r"[0-9a-f]{32}", owner):
            return False
        try:
            fd = os.open(self.folder / owner, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # drops the lock if it was ours to take
        return False

    def sweep(self) -> None:
        """Remove the files of owners that died."""
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                if re.fullmatch(r"[0-9a-f]{32}", path.name) and not self.alive(path.name):
                    path.unlink(missing_ok=True)

    def release(self) -> None:
        if self._fd is not None:
            (self.folder / self.id).unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def _check_names(kind: str, session: str | None) -> None:
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise ValueError(f"a record kind is 1-40 lower-case letters and underscores, got {kind!r}")
    if session is not None and (not isinstance(session, str) or not session):
        raise ValueError(f"a session id is a non-empty string, got {session!r}")


def _next_place(head: tuple[int, str, str] | None, last: tuple[int, str] | None) -> tuple[int, str]:
    """``(seq, prev)`` of the next record: after the chain's end, or after a (genuine) head that is
    further on, so records removed from the end stay a visible gap."""
    if head is not None and (last is None or head[0] > last[0]):
        return head[0] + 1, head[1]
    return (last[0] + 1, last[1]) if last else (1, GENESIS)


def _load_key(path: Path, db: Path, has_records: bool) -> bytes:
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if has_records:
            raise AuditKeyMissing(
                f"the audit log {db} has records but its key {path} is missing: nothing in it can be verified, "
                "and no new key is made for a log that has records. Restore the key file from a backup."
            ) from None
        return _create_key(path)
    if len(key) != KEY_BYTES:
        raise AuditError(f"{path} is not an audit key: {len(key)} bytes instead of {KEY_BYTES}")
    return key


def _create_key(path: Path) -> bytes:
    """A new random key, written whole (mode 0600) under a temporary name, then linked into place:
    if another process made the key first, that one is used."""
    key = secrets.token_bytes(KEY_BYTES)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return _load_key(path, path, has_records=False)
    finally:
        os.unlink(temp)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return key


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"give a time with its time zone (e.g. datetime.now(UTC)), got {moment!r}")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _summary(session: str, started: str, start: str, ended: str | None, end: str | None) -> SessionSummary:
    start_body, end_body = json.loads(start), json.loads(end) if end else {}
    return SessionSummary(
        id=session, started=started, ended=ended, transport=start_body.get("transport"),
        requester=start_body.get("requester"), client=start_body.get("client"), portrait=start_body.get("portrait"),
        portrait_sha256=start_body.get("portrait_sha256"), consent=start_body.get("consent"),
        watermark=start_body.get("watermark"), frames=end_body.get("frames"), seconds=end_body.get("seconds"),
        end_reason=end_body.get("reason"), params=start_body.get("params") or {},
    )  # fmt: skip
