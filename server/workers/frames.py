"""One session's frame in shared memory: the worker renders into it, the server copies it out.

A ``FrameBuffer`` is a file under ``/dev/shm`` (a RAM file system) mapped by both processes. The
server creates it and names it in the session's ``open``; once the worker has mapped it the name
is removed, so nothing is left behind whichever process dies first. A session makes one call at
a time, so one buffer is enough: the worker writes frame n while answering the call for it, and
the server has copied frame n out before it asks for frame n + 1.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile
from pathlib import Path

import numpy as np

SHM_DIR = Path("/dev/shm")


class FrameBuffer:
    """An ``(S, S, 3)`` uint8 frame shared between processes."""

    def __init__(self, path: str, size: int, create: bool = False) -> None:
        self.path, self.shape = path, (size, size, 3)
        length = size * size * 3
        fd = os.open(path, os.O_RDWR)
        try:
            if create:
                os.ftruncate(fd, length)
            self._map = mmap.mmap(fd, length)
        finally:
            os.close(fd)  # the mapping keeps the memory
        self.array = np.frombuffer(self._map, np.uint8).reshape(self.shape)

    @classmethod
    def create(cls, size: int) -> FrameBuffer:
        fd, path = tempfile.mkstemp(prefix="sonic-rt-frame-", dir=SHM_DIR if SHM_DIR.is_dir() else None)
        os.close(fd)
        try:
            return cls(path, size, create=True)
        except BaseException:
            os.unlink(path)
            raise

    def write(self, image: np.ndarray) -> None:
        self.array[...] = image

    def read(self) -> np.ndarray:
        """A copy of the frame, the caller's to keep."""
        return self.array.copy()

    def unlink(self) -> None:
        """Remove the name (the memory lives on while a process maps it)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def close(self) -> None:
        if not self._map.closed:
            del self.array
            self._map.close()
