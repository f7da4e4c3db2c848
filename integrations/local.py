"""An avatar's session in this process: a ``streaming`` session driven in real time, on record.

The portrait is enrolled here (a built-in sample, or an image file with the agent's consent
attestation), the session is built as the server builds its own (``server.proxy.build_session``:
the shipped motion model, voice activity, the same parameters), and ``streaming.LiveSession``
paces its frames. As every session, it is in the audit log before its first frame — transport
``pipecat``/``livekit``, the agent as the requester, the portrait's hash and consent — and every
frame carries the watermark of that record; ``aclose`` ends the record with the frames made.
Blocking work (enrolment, the model, the log's writes) runs on the backend's own threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from server.proxy import build_session
from server.state import split_params
from sonic_rt.audio import timings
from sonic_rt.errors import ConsentRequired
from sonic_rt.provenance.audit import CONSENT_ATTESTATION, SAMPLE_CONSENT, STOPPED, AuditLog, default_path, end_reason
from sonic_rt.provenance.marks import Marks
from streaming.live import LiveSession

from .backend import AvatarConfig, AvatarFrame

log = logging.getLogger(__name__)
THREADS = 2  # the session's calls (one at a time) and the log's writes beside them


class LocalBackend:
    """``Backend`` on a ``streaming.Session`` in this process."""

    def __init__(self, config: AvatarConfig, transport: str) -> None:
        self.config, self.transport = config, transport
        self.session_id = uuid.uuid4().hex
        self._executor = ThreadPoolExecutor(THREADS, thread_name_prefix="sonic-rt-avatar")
        self._log: AuditLog | None = None
        self.live: LiveSession | None = None
        self.fps = self.size = self.watermark = 0
        self._ended = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            session = await loop.run_in_executor(self._executor, self._open)
        except BaseException as err:
            await self.aclose(end_reason(err))
            raise
        self.live = LiveSession(session, self._executor)
        self.fps, self.size = session.fps, session.animator.identity.out_size

    def _open(self):
        """(Blocking.) Enrol, record the session's start, build it with the record's watermark."""
        from sonic_rt.face.analysis import FaceAnalyzer
        from sonic_rt.face.samples import is_sample, load_sample
        from sonic_rt.motion.stream import load_model
        from sonic_rt.render.identity import enroll, sha256_of

        config = self.config
        motion, video = split_params(config.params)
        if is_sample(config.portrait):
            source, consent = load_sample(config.portrait), SAMPLE_CONSENT
        elif not config.consent:
            raise ConsentRequired(
                "a portrait file is only animated with consent: pass consent=True to confirm that you may use this "
                "face and that the person shown agreed to it being animated"
            )
        else:
            source, consent = Path(config.portrait), CONSENT_ATTESTATION
        with contextlib.closing(FaceAnalyzer()) as analyzer:
            identity = enroll(source, config.geometry, analyzer)
        model, idle = load_model()
        self._log = AuditLog(config.audit_db or default_path())
        params = {**config.params, "label": config.label}
        record = self._log.start_session(self.session_id, transport=self.transport, requester=config.agent,
                                         client="local", portrait=config.portrait, portrait_sha256=sha256_of(source),
                                         consent=consent, params=params, record=False)  # fmt: skip
        self.watermark = record.body["watermark"]
        return build_session(identity, model, idle, motion, video, Marks(self.watermark, config.label))

    async def push(self, samples: np.ndarray) -> None:
        await self.live.push_audio(samples)

    async def place_timings(self, fmt: str, marks: list[dict], end_ms: float | None, offset: float) -> None:
        parsed = timings.parse(fmt, marks, end=None if end_ms is None else end_ms / 1000)
        await self.live.place_timings(parsed, offset)

    async def flush(self) -> None:
        await self.live.flush()

    async def interrupt(self) -> int:
        return await self.live.interrupt()

    async def frames(self) -> AsyncIterator[AvatarFrame]:
        async for f in self.live.frames():
            yield AvatarFrame(f.index, f.pts, f.image, f.audio, f.source, f.speech)

    async def aclose(self, reason: str = STOPPED) -> None:
        """End the audit record (``reason``: how the session ended) and the threads; once."""
        if self._ended:
            return
        self._ended = True
        loop = asyncio.get_running_loop()
        if self._log is not None:
            frames = self.live.session.frames_out if self.live is not None else 0
            await loop.run_in_executor(self._executor, self._end, frames, reason)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _end(self, frames: int, reason: str) -> None:
        try:
            self._log.end_session(self.session_id, frames=frames, seconds=round(frames / (self.fps or 25), 3),
                                  reason=reason)  # fmt: skip
        finally:
            self._log.close()
