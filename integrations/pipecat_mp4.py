"""A pipecat output transport that plays the bot into an MP4 file: a live transport's pacing, offline.

``Mp4OutputTransport`` is a ``BaseOutputTransport`` with live video at the avatar's frame rate,
so pipecat paces the images on its own clock as it would for a call, and 16 kHz audio. Each
image is written as the next video frame; the bot's audio is written as it comes, after silence
up to the start of the frame being shown (a live transport plays silence when the bot says
nothing), so sound and picture stay in step to within a frame. It also keeps what it wrote
(``frames``, ``audio``, when each image went out), for the example and the tests to look at.
The file is complete once the pipeline ends (``EndFrame``/``CancelFrame``).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
from pipecat.frames.frames import CancelFrame, EndFrame, OutputAudioRawFrame, OutputImageRawFrame, StartFrame
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams

from sonic_rt.audio import FPS, SAMPLE_RATE
from sonic_rt.media.mp4 import ThreadedMp4Writer


class Mp4OutputTransport(BaseOutputTransport):
    """Writes the bot's live video (``size`` x ``size`` RGB at ``fps``) and audio to ``path``."""

    def __init__(self, path: str | Path, size: int, fps: int = FPS, keep: bool = True, **kwargs) -> None:
        params = TransportParams(audio_out_enabled=True, audio_out_sample_rate=SAMPLE_RATE, video_out_enabled=True,
                                 video_out_is_live=True, video_out_width=size, video_out_height=size,
                                 video_out_framerate=fps, audio_out_end_silence_secs=0)  # fmt: skip
        super().__init__(params, **kwargs)
        self.path, self.size, self.fps, self.keep = Path(path), size, fps, keep
        self._writer: ThreadedMp4Writer | None = None
        self._audio_samples = 0
        self.frames_written = 0
        self.frames: list[np.ndarray] = []  # the images written, with ``keep``
        self.frame_times: list[float] = []  # when each went out (monotonic)
        self.audio: list[np.ndarray] = []  # the audio written (16 kHz float32, silence included), with ``keep``

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        if self._writer is None:
            self._writer = ThreadedMp4Writer(self.path, self.size, self.fps)
        await self.set_transport_ready(frame)

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        await self._close()

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        await self._close()

    async def write_video_frame(self, frame: OutputImageRawFrame) -> bool:
        if self._writer is None:
            return False
        image = np.frombuffer(frame.image, np.uint8).reshape(frame.size[1], frame.size[0], 3)
        self._pad_audio()
        self._writer.write_frame(image)
        self.frames_written += 1
        self.frame_times.append(time.monotonic())
        if self.keep:
            self.frames.append(image)
        return True

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        if self._writer is None:
            return False
        self._pad_audio()
        samples = np.frombuffer(frame.audio, np.int16).astype(np.float32) / 32768
        self._write_audio(samples)
        return True

    def _pad_audio(self) -> None:
        """Silence up to the start of the frame about to be shown: the bot said nothing meanwhile."""
        due = self.frames_written * SAMPLE_RATE // self.fps
        if self._audio_samples < due:
            self._write_audio(np.zeros(due - self._audio_samples, np.float32))

    def _write_audio(self, samples: np.ndarray) -> None:
        self._writer.write_audio(samples)
        self._audio_samples += len(samples)
        if self.keep:
            self.audio.append(samples)

    async def _close(self) -> None:
        """Finish the file (off the event loop: the encoder drains its queue first)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await asyncio.get_running_loop().run_in_executor(None, writer.close)
