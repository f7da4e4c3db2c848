"""Round trips of RGB frames through real video encoders and back, for the watermark's tests and
``bench/bench_watermark.py``: the server's own encoders (JPEG and H.264 over WebSocket, VP8 over
WebRTC as aiortc sends it) and H.264 MP4 files at a chosen bit rate, as a re-encode would make them."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import cv2
import numpy as np

FPS = 25


def jpeg(frames: list[np.ndarray], quality: int = 80) -> list[np.ndarray]:
    """What the WebSocket client draws with the default ``jpeg`` video (quality 80)."""
    from streaming.encoders import JpegEncoder

    encoder = JpegEncoder(quality)
    out = []
    for frame in frames:
        data, _ = encoder.encode(frame)
        out.append(cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    return out


def h264_stream(frames: list[np.ndarray]) -> list[np.ndarray]:
    """What the WebSocket client decodes with ``h264`` video (libx264 ultrafast, 1 Mbps)."""
    from streaming.encoders import H264Encoder

    encoder = H264Encoder(frames[0].shape[0], FPS)
    decoder = av.CodecContext.create("h264", "r")
    out = []
    for frame in frames:
        data, _ = encoder.encode(frame)
        for packet in decoder.parse(data):
            out.extend(f.to_ndarray(format="rgb24") for f in decoder.decode(packet))
    return out


def vp8_webrtc(frames: list[np.ndarray], bitrate: int | None = None) -> list[np.ndarray]:
    """What a browser receives over WebRTC: aiortc's VP8 encoder (500 kbps unless ``bitrate``;
    congestion control moves it between 250 kbps and 1.5 Mbps), depacketised and decoded."""
    from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, VpxPayloadDescriptor
    from aiortc.jitterbuffer import JitterFrame

    encoder, decoder = Vp8Encoder(), Vp8Decoder()
    if bitrate is not None:
        encoder.target_bitrate = bitrate
    out = []
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = i * 3600, Fraction(1, 90_000)
        payloads, timestamp = encoder.encode(frame)
        data = b"".join(VpxPayloadDescriptor.parse(p)[1] for p in payloads)
        out.extend(f.to_ndarray(format="rgb24") for f in decoder.decode(JitterFrame(data=data, timestamp=timestamp)))
    return out


def mp4(frames: list[np.ndarray], bitrate: int | None = None, crf: int | None = None,
        preset: str = "medium") -> tuple[list[np.ndarray], float]:  # fmt: skip
    """An H.264 MP4 at a target ``bitrate`` (or ``crf``), as ffmpeg makes it by default (preset
    medium), decoded again; returns the frames and the bit rate the file actually has."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        if bitrate is not None:
            stream.bit_rate = bitrate
        stream.options = {"preset": preset, **({"crf": str(crf)} if crf is not None else {})}
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    size = buf.tell()
    buf.seek(0)
    with av.open(buf) as container:
        out = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return out, size * 8 / (len(frames) / FPS)
