"""A live session kept as an MP4 while it runs: every frame with its audio, readable at any moment.

The file is a fragmented MP4 (H.264 + AAC, a fragment a second), so ``readable()`` bytes of it
play at any time, and the whole file once the session has ended. Recording stops by itself after
``max_seconds``, so a session left running cannot fill the disk.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sonic_rt.media.mp4 import Mp4Writer, complete_length

from .session import OutFrame

MAX_SECONDS = 600
CRF = 23
PRESET = "ultrafast"  # ~2 ms a 512 px frame: recording must not slow the live stream


class Recording:
    """``add`` each frame as it is sent (blocking: run it off the event loop), ``close`` at the end."""

    def __init__(self, path: str | Path, size: int, fps: int, max_seconds: float = MAX_SECONDS) -> None:
        self.path = Path(path)
        self.fps = fps
        self.max_frames = int(max_seconds * fps)
        self.frames = 0
        self.closed = False
        self._writer = Mp4Writer(self.path, size, fps, crf=CRF, preset=PRESET, fragmented=True)
        self._lock = threading.Lock()

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    @property
    def full(self) -> bool:
        return self.frames >= self.max_frames

    def add(self, frame: OutFrame) -> None:
        with self._lock:
            if self.closed:
                return
            self._writer.write_frame(frame.image)
            self._writer.write_audio(frame.audio)
            self.frames += 1
            if self.full:
                self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def readable(self) -> int:
        """How many bytes from the start of the file make a playable MP4 now."""
        with self._lock:
            if self.closed:
                return self.path.stat().st_size if self.path.exists() else 0
        return complete_length(self.path)

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()
