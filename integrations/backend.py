"""Where an avatar's session runs, chosen once per avatar: in this process or on a server.

``AvatarConfig`` says which portrait, with which of Sonic's live parameters, and where: without
``url`` the session is a ``streaming`` session in this process (``integrations.local``: its
watermark and audit record as every session's, the agent as the requester); with ``url`` it is a
session of a ``sonic-rt serve`` over the WebSocket protocol (``integrations.remote``, with
``api_key``: the server records the key's owner as the requester). Both are a ``Backend``: the
agent's 16 kHz speech in, ``AvatarFrame``s out at the session's frame rate, idle frames from the
start and between turns. ``integrations.factory.open_backend`` chooses one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from server import protocol as p
from server.state import BadParams, split_params
from sonic_rt.config import GeometryParams

AGENT_TRANSPORTS = ("pipecat", "livekit")  # how the audit log names the sessions an agent asks for


@dataclass(frozen=True)
class AvatarConfig:
    """One avatar: ``portrait`` (``sample:NAME``, an image file with ``consent``, or on a server an
    enrolled portrait's id), ``params`` (Sonic's live parameters, as the WebSocket ``start`` takes
    them: ``seed``, ``dynamic_scale``, ``motion_scale``, ``inference_steps``, ``smoothing``,
    ``block_frames``, ``lip_sync_offset_ms``, ``fps``), ``label`` (the visible "AI-generated"
    label). In this process (``url`` None): ``geometry`` (``expand_ratio``, ``min_resolution``: the
    frame's side) of the portrait's enrolment, ``agent`` the requester the audit log records,
    ``audit_db`` the log (default: ``sonic_rt.provenance.audit.default_path()``). On a server: ``url``
    (``ws://HOST:PORT/v1/stream``), ``api_key``, ``jpeg_quality`` of the frames it sends.
    Bad parameters raise ``server.state.BadParams`` (``ValueError`` for the rest) here, at once."""

    portrait: str = "sample:astronaut"
    params: Mapping[str, float | int] = field(default_factory=dict)
    label: bool = False
    consent: bool = False
    geometry: GeometryParams = field(default_factory=GeometryParams)
    agent: str = "agent"
    audit_db: Path | None = None
    url: str | None = None
    api_key: str | None = None
    jpeg_quality: int = 80

    def __post_init__(self) -> None:
        try:
            live = p.SessionParams(**dict(self.params))
        except ValueError as err:  # pydantic's ValidationError names the field
            raise BadParams(str(err)) from None
        split_params(live.model_dump())  # the server's own checks of ranges and combinations
        object.__setattr__(self, "params", live.model_dump(exclude_none=True))
        if self.url is not None and not self.url.startswith(("ws://", "wss://")):
            raise ValueError(f"url must be a ws:// or wss:// URL of a sonic-rt server's /v1/stream, got {self.url!r}")
        if not 10 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 10-100, got {self.jpeg_quality}")
        if not self.agent or len(self.agent) > 200:
            raise ValueError("agent must be a name of 1-200 characters (the audit log's requester)")

    @property
    def remote(self) -> bool:
        return self.url is not None

    def replace(self, **changes) -> AvatarConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class AvatarFrame:
    """Output frame ``index`` at ``pts`` seconds: ``image`` ``(S, S, 3)`` uint8 RGB, ``audio`` the
    16 kHz float32 samples that play with it, ``source`` the second of the agent's audio it shows
    (None while the face idles), ``speech`` whether that audio is speech."""

    index: int
    pts: float
    image: np.ndarray
    audio: np.ndarray
    source: float | None
    speech: bool


class Backend(Protocol):
    """A session for one avatar. ``start`` first; ``frames`` is iterated by one task; the rest are
    called from one task in order (``integrations.driver`` does both)."""

    fps: int
    size: int
    watermark: int  # the 32-bit payload every frame carries (its audit record names it)

    async def start(self) -> None: ...
    async def push(self, samples: np.ndarray) -> None:
        """The agent's speech, 16 kHz mono float32."""

    async def place_timings(self, fmt: str, marks: list[dict], end_ms: float | None, offset: float) -> None:
        """Phoneme/viseme timings (the protocol's ``timings``) from ``offset`` seconds of the agent's audio."""

    async def flush(self) -> None: ...
    async def interrupt(self) -> int:
        """Drop queued speech; returns the index of the first frame made after it."""

    def frames(self) -> AsyncIterator[AvatarFrame]: ...
    async def aclose(self) -> None:
        """End the session and free what it holds (its place on a server, its audit record); twice is harmless."""
