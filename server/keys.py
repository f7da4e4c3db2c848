"""API keys in a SQLite file: only each key's SHA-256 is stored, never the key itself.

A key is ``srt_`` + 32 random bytes (``secrets``, URL-safe base64): 256 bits of entropy, so a
plain SHA-256 of it is enough at rest. Slow password hashes (bcrypt, scrypt, argon2) exist to make
guessing *low-entropy* secrets expensive; nobody can enumerate 2**256 keys however fast the hash,
and a fast hash lets every request be checked without a cost of its own. Besides the hash the
store keeps a short visible prefix (so a person can tell their keys apart in ``keys list``), a
unique name, the key's limits (concurrent sessions, minutes of video per UTC day; NULL:
unlimited), when it was created and when it was revoked.

Every call opens the file, does its work and closes it: the server and the ``sonic-rt keys``
command can use one file at once, and a key revoked from the command is refused by a running
server from its next request on.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sonic_rt.config import state_dir

KEY_PREFIX = "srt_"
KEY_BYTES = 32
SHOWN_CHARS = len(KEY_PREFIX) + 6  # the visible prefix kept for listing: "srt_" + 6 of the 43 random characters
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
FILENAME = "keys.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    name TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    max_sessions INTEGER,
    minutes_per_day REAL,
    created TEXT NOT NULL,
    revoked TEXT
)
"""


class KeyStoreError(ValueError):
    """A request the key store cannot carry out (the message says why)."""


class DuplicateName(KeyStoreError):
    pass


class UnknownName(KeyStoreError):
    pass


@dataclass(frozen=True)
class KeyRecord:
    """What is stored about one key (never the key itself)."""

    name: str
    prefix: str
    max_sessions: int | None  # concurrent live sessions and renders; None: only the server's own limit
    minutes_per_day: float | None  # minutes of video per UTC day; None: unlimited
    created: str  # ISO 8601, UTC
    revoked: str | None = None  # ISO 8601, UTC; None: in force

    @property
    def active(self) -> bool:
        return self.revoked is None


def default_path() -> Path:
    """``keys.db`` in ``sonic_rt.config.state_dir()`` (``$SONIC_RT_HOME``, else ``$XDG_STATE_HOME/sonic-rt``,
    else ``~/.local/state/sonic-rt``)."""
    return state_dir() / FILENAME


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyStore:
    """The keys in one SQLite file (created, with its folder, on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def add(self, name: str, max_sessions: int | None = None, minutes_per_day: float | None = None
            ) -> tuple[str, KeyRecord]:  # fmt: skip
        """A new key named ``name``; returns the key (shown once: only its hash is kept) and its record."""
        if not NAME.fullmatch(name):
            raise KeyStoreError(f"bad key name {name!r}: 1-64 letters, digits or . _ @ -, "
                                "starting with a letter or digit")  # fmt: skip
        if max_sessions is not None and max_sessions < 1:
            raise KeyStoreError(f"max sessions must be at least 1, not {max_sessions}")
        if minutes_per_day is not None and not minutes_per_day > 0:
            raise KeyStoreError(f"minutes per day must be more than 0, not {minutes_per_day}")
        key = new_key()
        record = KeyRecord(name, key[:SHOWN_CHARS], max_sessions, minutes_per_day, _now())
        with self._db() as db:
            try:
                row = (name, digest(key), record.prefix, max_sessions, minutes_per_day, record.created)
                db.execute("INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?, NULL)", row)
            except sqlite3.IntegrityError:
                raise DuplicateName(f"a key named {name!r} exists already (names stay taken after revoking)") from None
        return key, record

    def lookup(self, key: str) -> KeyRecord | None:
        """The record of ``key`` (revoked or not), or None for a key this store never issued."""
        hashed = digest(key)
        with self._db() as db:
            row = db.execute(f"SELECT sha256, {_FIELDS} FROM keys WHERE sha256 = ?", (hashed,)).fetchone()
        # the row was found by its hash; comparing again in constant time costs nothing and keeps
        # the check independent of how the database compares strings
        if row is None or not hmac.compare_digest(row[0], hashed):
            return None
        return KeyRecord(*row[1:])

    def list(self) -> list[KeyRecord]:
        with self._db() as db:
            return [KeyRecord(*row) for row in db.execute(f"SELECT {_FIELDS} FROM keys ORDER BY created, name")]

    def revoke(self, name: str) -> KeyRecord:
        """Revoke the key named ``name`` (revoking it again keeps the first time)."""
        with self._db() as db:
            db.execute("UPDATE keys SET revoked = ? WHERE name = ? AND revoked IS NULL", (_now(), name))
            row = db.execute(f"SELECT {_FIELDS} FROM keys WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownName(f"no key named {name!r} (see `sonic-rt keys list`)")
        return KeyRecord(*row)

    def active(self) -> int:
        """How many keys are in force (0 if the file does not exist: it is not created for this)."""
        if not self.path.exists():
            return 0
        with self._db() as db:
            return db.execute("SELECT COUNT(*) FROM keys WHERE revoked IS NULL").fetchone()[0]

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))  # hashes only, but nobody else's business
        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:  # one transaction: committed, or rolled back on an error
                db.execute(SCHEMA)
                yield db
        finally:
            db.close()


_FIELDS = "name, prefix, max_sessions, minutes_per_day, created, revoked"
