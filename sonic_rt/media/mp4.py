"""MP4 output that plays in browsers: H.264 (yuv420p) + AAC, ``moov`` at the front (faststart),
or fragmented (a live recording that can be read while it grows: ``complete_length``).

Frames and audio are written as they are produced, so memory stays flat however long the video
is. Video timestamps are frame indices at ``fps``; audio timestamps are sample counts at the
audio rate, both starting at zero, so audio and frames line up by construction.
"""

from __future__ import annotations

import contextlib
import queue
import struct
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..audio import SAMPLE_RATE

AAC_RATE = 48_000  # what every browser plays; the 16 kHz speech is resampled up once
AAC_FRAME = 1024  # samples per AAC frame
# fragmented MP4: a header without samples, then self-contained fragments, each starting at a
# keyframe; the file plays at every fragment boundary, so it can be read while it is written
FRAGMENTED = "+frag_keyframe+empty_moov+default_base_moof"


class Mp4Writer:
    """``write_frame`` RGB frames and ``write_audio`` 16 kHz mono float32, then ``close``."""

    def __init__(self, path: str | Path, size: int, fps: int = 25, crf: int = 20, preset: str = "veryfast",
                 fragmented: bool = False) -> None:  # fmt: skip
        if size % 2:
            raise ValueError(f"frame size must be even for yuv420p, got {size}")
        self.path = Path(path)
        # fragmented: each fragment goes to the file as soon as it is complete, not when a buffer fills
        options = {"movflags": FRAGMENTED, "flush_packets": "1"} if fragmented else {"movflags": "+faststart"}
        self._out = av.open(str(self.path), mode="w", format="mp4", options=options)
        self._video = self._out.add_stream("libx264", rate=fps)
        self._video.width = self._video.height = size
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"crf": str(crf), "preset": preset}
        if fragmented:
            self._video.options["g"] = str(fps)  # a keyframe, hence a fragment, every second
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


class ThreadedMp4Writer:
    """An ``Mp4Writer`` whose encoding runs on its own thread, behind a bounded queue.

    The producer (rendering) and the encoder then use a core each. ``write_frame`` blocks when
    ``depth`` items are waiting, so memory stays flat; an encoder failure is raised by the next
    call. ``encode_ms`` is the time the encoder thread spent working.
    """

    def __init__(self, path: str | Path, size: int, fps: int = 25, crf: int = 20, preset: str = "veryfast",
                 depth: int = 8) -> None:  # fmt: skip
        self._writer = Mp4Writer(path, size, fps, crf, preset)
        self._queue: queue.Queue[tuple[str, np.ndarray] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self.encode_ms = 0.0
        self._thread = threading.Thread(target=self._run, name="mp4-encoder", daemon=True)
        self._thread.start()

    @property
    def path(self) -> Path:
        return self._writer.path

    def write_frame(self, rgb: np.ndarray) -> None:
        self._put(("frame", rgb))

    def write_audio(self, samples: np.ndarray) -> None:
        self._put(("audio", np.array(samples, dtype=np.float32)))

    def close(self) -> None:
        """Wait for the queue to drain, then finish the file; raises what the encoder raised."""
        if self._thread.is_alive():
            self._put(None)
            self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop without finishing the file (the caller deletes it)."""
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
            self._thread.join(0.05)

    def _put(self, item: tuple[str, np.ndarray] | None) -> None:
        while True:
            self._raise()
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    self._raise()
                    raise RuntimeError("the MP4 encoder thread stopped") from None

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                t0 = time.perf_counter()
                kind, data = item
                if kind == "frame":
                    self._writer.write_frame(data)
                else:
                    self._writer.write_audio(data)
                self.encode_ms += (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            self._writer.close()
            self.encode_ms += (time.perf_counter() - t0) * 1e3
        except BaseException as err:  # handed to the producer, which raises it
            self._error = err


def complete_length(path: str | Path) -> int:
    """The length of the prefix of a growing (fragmented) MP4 made of whole top-level boxes, with
    no fragment header (``moof``) left without its samples (``mdat``): a file that plays."""
    end = good = 0
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        while end + 8 <= size:
            f.seek(end)
            length, kind = struct.unpack(">I4s", f.read(8))
            if length == 1 and end + 16 <= size:  # a 64-bit size follows the type
                length = struct.unpack(">Q", f.read(8))[0]
            if length < 8 or end + length > size:
                break
            end += length
            if kind != b"moof":
                good = end
    return good
