"""Frames to bytes for transports that carry encoded video themselves (the WebSocket protocol).

A backend is picked once, by ``make_encoder(codec, ...)``, behind the small ``VideoEncoder``
protocol. JPEG: every frame stands alone (simplest to show, ~40 KB at 512 px). H.264: an Annex-B
access unit per frame from libx264 (ultrafast, zerolatency, no B-frames; a keyframe every
``gop`` frames and on the first), ~10x less bandwidth. Encoders run one thread each: the
machine's cores belong to the sessions.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Protocol

import av
import cv2
import numpy as np

CODECS = ("jpeg", "h264")
JPEG_QUALITY = 80
H264_BITRATE = 1_000_000
GOP_FRAMES = 50


class VideoEncoder(Protocol):
    codec: str

    def encode(self, image: np.ndarray) -> tuple[bytes, bool]:
        """``(S, S, 3)`` uint8 RGB -> (payload, is_keyframe)."""
        ...


class JpegEncoder:
    codec = "jpeg"

    def __init__(self, quality: int = JPEG_QUALITY) -> None:
        self._params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]

    def encode(self, image: np.ndarray) -> tuple[bytes, bool]:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), self._params)
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes(), True


class H264Encoder:
    codec = "h264"

    def __init__(self, size: int, fps: int, bitrate: int = H264_BITRATE, gop: int = GOP_FRAMES) -> None:
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width = ctx.height = size
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = Fraction(1, fps)
        ctx.framerate = Fraction(fps)
        ctx.bit_rate = bitrate
        ctx.gop_size = gop
        ctx.max_b_frames = 0
        ctx.thread_count = 1
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "repeat-headers": "1"}
        self._ctx = ctx
        self._pts = 0

    def encode(self, image: np.ndarray) -> tuple[bytes, bool]:
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = self._pts
        self._pts += 1
        packets = self._ctx.encode(frame)
        return b"".join(bytes(p) for p in packets), any(p.is_keyframe for p in packets)


def make_encoder(codec: str, size: int, fps: int, quality: int = JPEG_QUALITY) -> VideoEncoder:
    if codec == "jpeg":
        return JpegEncoder(quality)
    if codec == "h264":
        return H264Encoder(size, fps)
    raise ValueError(f"video codec must be one of {', '.join(CODECS)}, got {codec!r}")
