"""Who started a session of the audit log, and whether it still lives.

An *owner* is one ``AuditLog`` in one process: it holds an ``flock`` on a file in ``<db>.owners/``
while it lives, and the kernel lets go of the lock when the process dies, however it dies. So
``AuditLog.recover`` can end the open sessions of crashed owners only, never those of a server or
a ``sonic-rt generate`` still running on the same log.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import uuid
from pathlib import Path


class Owner:
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
