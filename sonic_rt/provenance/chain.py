"""The chain that makes the audit log tamper-evident, and the walk that checks it.

Each record's ``mac`` is ``HMAC-SHA256(key, canonical JSON of [seq, at, kind, session, body, prev])``,
``prev`` being the previous record's MAC (``GENESIS`` for the first); the head anchor (the last seq
and MAC) carries a MAC of its own. The key is a random 32-byte file beside the database (``<db>.key``,
mode 0600). ``ChainCheck`` walks the records in order and names each one that breaks the chain;
``Chain.head_problems`` says how the head disagrees with the chain's end. Storage is
``sonic_rt.provenance.audit``'s; nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AuditError, AuditKeyMissing

KEY_BYTES = 32
GENESIS = "0" * 64  # the ``prev`` of record 1
MOVED_SEARCH = 8  # a record that fails its MAC is tried at up to this many places either side
TAMPERING_NOTED = "tampering_noted"  # written by ``append`` when the head did not match the chain's end


def canonical(value) -> str:
    """Canonical JSON: sorted keys, no spaces, no NaN; a value JSON cannot hold is a ``TypeError``."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"an audit record holds JSON values only: {err}") from None


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


class Chain:
    """The MACs of one log's key: a record's, the head anchor's, and what a head says of the chain's end."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def mac(self, seq: int, at: str, kind: str, session: str | None, body: str, prev: str) -> str:
        message = canonical([seq, at, kind, session, body, prev]).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def head_tag(self, seq: int, mac: str) -> str:
        return hmac.new(self._key, canonical(["head", seq, mac]).encode(), hashlib.sha256).hexdigest()

    def head_ok(self, head: tuple[int, str, str]) -> bool:
        seq, mac, tag = head
        return hmac.compare_digest(tag, self.head_tag(seq, mac))

    def head_problems(self, head: tuple[int, str, str] | None, last: tuple[int, str] | None) -> list[str]:
        """How the head anchor disagrees with the chain's end ``(seq, mac)``, if it does."""
        if head is None:
            return ["the head anchor is missing: records may have been removed from the end"] if last else []
        seq, mac, _ = head
        if not self.head_ok(head):
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

    def fingerprint(self) -> str:
        """What the database keeps of its key, to know it again (not the key: a MAC made with it)."""
        return hmac.new(self._key, b"sonic-rt audit key", hashlib.sha256).hexdigest()


class ChainCheck:
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


def next_place(head: tuple[int, str, str] | None, last: tuple[int, str] | None) -> tuple[int, str]:
    """``(seq, prev)`` of the next record: after the chain's end, or after a (genuine) head that is
    further on, so records removed from the end stay a visible gap."""
    if head is not None and (last is None or head[0] > last[0]):
        return head[0] + 1, head[1]
    return (last[0] + 1, last[1]) if last else (1, GENESIS)


def key_path(db: Path) -> Path:
    return db.with_name(db.name + ".key")


def load_key(path: Path, db: Path, has_records: bool) -> bytes:
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        if has_records:
            raise AuditKeyMissing(
                f"the audit log {db} has records but its key {path} is missing: nothing in it can be verified, "
                "and no new key is made for a log that has records. Restore the key file from a backup."
            ) from None
        return create_key(path)
    if len(key) != KEY_BYTES:
        raise AuditError(f"{path} is not an audit key: {len(key)} bytes instead of {KEY_BYTES}")
    return key


def create_key(path: Path) -> bytes:
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
            return load_key(path, path, has_records=False)
    finally:
        os.unlink(temp)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return key
