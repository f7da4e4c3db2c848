"""The server's side of the audit log (``sonic_rt.provenance.audit``): its starts and stops, portrait
enrolments, and one ``SessionRecord`` per live session, whose ``session_start`` is on disk before
the session is acknowledged and whose ``session_end`` is written exactly once, however the
session ends. Writes are blocking (an fsync each): they run on the executor."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from sonic_rt import __version__
from sonic_rt.config import MotionParams, VideoParams
from sonic_rt.provenance.audit import PORTRAIT, SERVER_START, SERVER_STOP, SERVER_STOPPED, AuditLog

if TYPE_CHECKING:
    from streaming.session import Session

    from .portraits import Enrolled


def client_address(connection: HTTPConnection) -> str | None:
    return connection.client.host if connection.client is not None else None


class SessionRecord:
    """One live session in the log: ``end`` appends its ``session_end`` (the first call only),
    with the frames its ``Session`` sent (once ``follow`` names it) and their length at ``fps``."""

    def __init__(self, audit: ServerAudit, session_id: str, watermark: int, fps: int) -> None:
        self.audit, self.id, self.fps = audit, session_id, fps
        self.watermark = watermark  # the payload this session's frames are to carry (its session_start has it)
        self._session: Session | None = None
        self._lock = threading.Lock()
        self.ended = False

    def follow(self, session: Session) -> None:
        """Count ``session``'s frames in the end record."""
        self._session = session

    async def end(self, reason: str) -> None:
        if self._claim():
            await asyncio.get_running_loop().run_in_executor(self.audit.executor, self._write, reason)

    def end_now(self, reason: str) -> None:
        """``end``, blocking."""
        if self._claim():
            self._write(reason)

    def _claim(self) -> bool:
        with self._lock:
            first, self.ended = not self.ended, True
        if first:
            self.audit.forget(self)
        return first

    def _write(self, reason: str) -> None:
        frames = self._session.frames_out if self._session is not None else 0
        self.audit.log.end_session(self.id, frames=frames, seconds=round(frames / self.fps, 3), reason=reason)


class ServerAudit:
    """The server's audit log, open for the server's life (in a temporary folder when ``path`` is
    None); it knows the sessions still open, so a clean shutdown ends them."""

    def __init__(self, path: Path | None, executor: Executor) -> None:
        self._temp = None if path else Path(tempfile.mkdtemp(prefix="sonic-rt-audit-"))
        self.log = AuditLog(path or self._temp / "audit.db")
        self.executor = executor
        self._open: dict[str, SessionRecord] = {}
        self._lock = threading.Lock()

    def start_server(self, address: str | None) -> list[str]:
        """(Blocking.) End the sessions a crashed run left open, then record this start."""
        recovered = self.log.recover()
        self.log.append(SERVER_START, version=__version__, address=address, pid=os.getpid(), recovered=recovered)
        return recovered

    def session_fields(self, connection: HTTPConnection, transport: str, portrait: Enrolled, params: dict,
                       record: bool, requester: str) -> dict:  # fmt: skip
        """The keyword arguments of ``AuditLog.start_session`` for a session ``requester`` (an API
        key's name, or "dev") asked for on ``connection``."""
        return dict(transport=transport, requester=requester, client=client_address(connection),
                    portrait=portrait.id, portrait_sha256=portrait.sha256, consent=portrait.consent, params=params,
                    record=record)  # fmt: skip

    async def start_session(self, connection: HTTPConnection, requester: str, transport: str, session_id: str,
                            portrait: Enrolled, motion: MotionParams, video: VideoParams, record: bool,
                            label: bool) -> SessionRecord:  # fmt: skip
        """Append a live session's ``session_start`` (on disk when this returns: build and acknowledge
        the session after it, with the record's ``watermark``) and track it until it ends."""
        params = {**dataclasses.asdict(motion), **dataclasses.asdict(video), "label": label}
        fields = self.session_fields(connection, transport, portrait, params, record, requester)
        written = await self._run(functools.partial(self.log.start_session, session_id, **fields))
        opened = SessionRecord(self, session_id, written.body["watermark"], video.fps)
        with self._lock:
            self._open[session_id] = opened
        return opened

    async def portrait(self, connection: HTTPConnection, requester: str, portrait: Enrolled) -> None:
        """Record an enrolment: the portrait, its hash, the consent it came with, who and from where."""
        await self._run(functools.partial(
            self.log.append, PORTRAIT, portrait=portrait.id, portrait_sha256=portrait.sha256,
            consent=portrait.consent, requester=requester, client=client_address(connection),
        ))  # fmt: skip

    def forget(self, session: SessionRecord) -> None:
        with self._lock:
            self._open.pop(session.id, None)

    def close(self) -> None:
        """(Blocking.) End the sessions still open (``server_stopped``), record the stop, close the log."""
        with self._lock:
            still_open = list(self._open.values())
        for session in still_open:
            session.end_now(SERVER_STOPPED)
        self.log.append(SERVER_STOP, pid=os.getpid())
        self.log.close()
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)

    async def _run(self, work: Callable):
        return await asyncio.get_running_loop().run_in_executor(self.executor, work)
