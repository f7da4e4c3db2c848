"""A LiveKit room for running an avatar offline: what the agent publishes, read back, not sent.

No LiveKit server runs here, but LiveKit's media side does: ``rtc.AudioSource``/``VideoSource``,
their local tracks and ``rtc.AudioStream``/``VideoStream`` are native and need no connection.
``OfflineRoom`` is the part of ``rtc.Room`` that ``AvatarRunner`` and ``AvatarSession`` use (it is
connected, its local participant publishes tracks, it emits ``local_track_published``), and it
reads every track published back through the native streams: ``video`` holds each published
frame (RGB) with its capture timestamp, ``audio`` the published audio (16 kHz mono, silence where
the agent said nothing, from the first video frame on), and with ``record`` it writes both to an
MP4 when closed. The example agent runs against it; a real agent passes ``ctx.room`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from livekit import rtc

from sonic_rt.audio import FPS, SAMPLE_RATE
from sonic_rt.media.mp4 import Mp4Writer

_sids = itertools.count(1)


@dataclass
class OfflinePublication:
    """A published track (``rtc.LocalTrackPublication``'s part the agent uses)."""

    track: rtc.LocalAudioTrack | rtc.LocalVideoTrack
    kind: int
    sid: str = field(default_factory=lambda: f"TR_offline{next(_sids)}")

    @property
    def name(self) -> str:
        return self.track.name

    async def wait_for_subscription(self) -> None:
        """Someone watches at once: the room itself."""


class OfflineParticipant:
    """The agent's own participant in an ``OfflineRoom``."""

    def __init__(self, room: OfflineRoom, identity: str) -> None:
        self._room = room
        self.identity, self.name, self.sid = identity, identity, f"PA_{identity}"
        self.kind = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        self.attributes: dict[str, str] = {}
        self.track_publications: dict[str, OfflinePublication] = {}

    async def publish_track(self, track, options: rtc.TrackPublishOptions | None = None) -> OfflinePublication:
        kind = rtc.TrackKind.KIND_VIDEO if isinstance(track, rtc.LocalVideoTrack) else rtc.TrackKind.KIND_AUDIO
        publication = OfflinePublication(track, kind)
        self.track_publications[publication.sid] = publication
        self._room._read(publication)
        self._room.emit("local_track_published", publication, track)
        return publication

    async def unpublish_track(self, sid: str) -> None:
        self.track_publications.pop(sid, None)


class OfflineRoom(rtc.EventEmitter):
    """A connected room with no server: the local participant's tracks are read back, not sent."""

    def __init__(self, name: str = "offline", identity: str = "agent", record: str | Path | None = None) -> None:
        super().__init__()
        self.name = name
        self.local_participant = OfflineParticipant(self, identity)
        self.remote_participants: dict[str, object] = {}
        self.record = None if record is None else Path(record)
        self.video: list[tuple[int, np.ndarray]] = []  # (capture timestamp in µs, RGB frame)
        self._audio: list[np.ndarray] = []
        self._readers: set[asyncio.Task] = set()
        self._connected = True

    def isconnected(self) -> bool:
        return self._connected

    @property
    def audio(self) -> np.ndarray:
        """The published audio from the first video frame on, 16 kHz mono float32."""
        return np.concatenate(self._audio) if self._audio else np.zeros(0, np.float32)

    def _read(self, publication: OfflinePublication) -> None:
        reader = self._read_video if publication.kind == rtc.TrackKind.KIND_VIDEO else self._read_audio
        task = asyncio.get_running_loop().create_task(reader(publication.track))
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    async def _read_video(self, track: rtc.LocalVideoTrack) -> None:
        async with contextlib.aclosing(rtc.VideoStream(track, format=rtc.VideoBufferType.RGB24)) as stream:
            async for event in stream:
                frame = event.frame
                rgb = np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 3).copy()
                self.video.append((event.timestamp_us, rgb))

    async def _read_audio(self, track: rtc.LocalAudioTrack) -> None:
        async with contextlib.aclosing(rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)) as stream:
            async for event in stream:
                if self.video:  # from the first video frame on, so that sound and picture start together
                    self._audio.append(np.frombuffer(event.frame.data, np.int16).astype(np.float32) / 32768)

    async def aclose(self) -> None:
        """Stop reading, write the recording (if asked for); the room is disconnected after it."""
        self._connected = False
        for task in list(self._readers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.emit("connection_state_changed", rtc.ConnectionState.CONN_DISCONNECTED)
        if self.record is not None and self.video:
            await asyncio.get_running_loop().run_in_executor(None, self._write)

    def _write(self) -> None:
        size = self.video[0][1].shape[0]
        with Mp4Writer(self.record, size, FPS) as writer:
            for _, rgb in self.video:
                writer.write_frame(rgb)
            writer.write_audio(self.audio[: len(self.video) * SAMPLE_RATE // FPS])
