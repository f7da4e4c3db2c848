"""MP4 output that plays in browsers: H.264 (yuv420p) + AAC, ``moov`` at the front (faststart).

Frames and audio are written as they are produced, so memory stays flat however long the video
is. Video timestamps are frame indices at ``fps``; audio timestamps are sample counts at the
audio rate, both starting at zero, so audio and frames line up by construction.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .audio import SAMPLE_RATE

AAC_RATE = 48_000  # what every browser plays; the 16 kHz speech is resampled up once
AAC_FRAME = 1024  # samples per AAC frame


class Mp4Writer:
    """``write_frame`` RGB frames and ``write_audio`` 16 kHz mono float32, then ``close``."""

    def __init__(self, path: str | Path, size: int, fps: int = 25, crf: int = 20, preset: str = "veryfast") -> None:
        if size % 2:
            raise ValueError(f"frame size must be even for yuv420p, got {size}")
        self.path = Path(path)
        self._out = av.open(str(self.path), mode="w", format="mp4", options={"movflags": "+faststart"})
        self._video = self._out.add_stream("libx264", rate=fps)
        self._video.width = self._video.height = size
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"crf": str(crf), "preset": preset}
        self._video.codec_context.time_base = Fraction(1, fps)
        self._audio = self._out.add_stream("aac", rate=AAC_RATE)
        self._audio.layout = "mono"
        self._resampler = av.AudioResampler(format="fltp", layout="mono", rate=AAC_RATE)
        self._frames = 0
        self._samples = 0  # 16 kHz samples written
        self._closed = False

    @property
    def frames(self) -> int:
        return self._frames

    def write_frame(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self._frames
        self._frames += 1
        self._out.mux(self._video.encode(frame))

    def write_audio(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, dtype=np.float32).reshape(1, -1)
        if samples.size == 0:
            return
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._samples
        frame.time_base = Fraction(1, SAMPLE_RATE)
        self._samples += samples.shape[1]
        self._encode_audio(self._resampler.resample(frame))

    def _encode_audio(self, frames: list[av.AudioFrame]) -> None:
        for f in frames:
            self._out.mux(self._audio.encode(f))

    def close(self) -> None:
        """Flush encoders and write the file; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._encode_audio(self._resampler.resample(None))
        self._out.mux(self._audio.encode(None))
        self._out.mux(self._video.encode(None))
        self._out.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
