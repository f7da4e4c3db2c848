"""Audio in: any file ffmpeg reads, or live PCM chunks, as 16 kHz mono float32 in [-1, 1].

The rates are ``sonic_rt.audio``'s timing constants (``SAMPLE_RATE``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from ..errors import BadAudioChunk, BadChannelCount, BadSampleRate, EmptyAudio, NoAudioStream, UnreadableAudio
from . import SAMPLE_RATE

CHUNK_SAMPLES = 10 * SAMPLE_RATE  # default piece size of iter_audio
LIVE_RATE_RANGE = (8_000, 192_000)
MAX_CHANNELS = 8
# ffmpeg downmixes to float with coefficients that sum past 1 (stereo -> 0.707 L + 0.707 R);
# capping the mix matrix at 1 makes stereo -> (L + R) / 2, the same as ChunkResampler.
_DOWNMIX = {"rematrix_maxval": "1.0"}


def decode_audio(source: str | Path | bytes) -> np.ndarray:
    """Decode the first audio stream of a file (path or bytes) to an ``(n,)`` float32 array.

    Raises ``UnreadableAudio`` (missing, corrupt or not media), ``NoAudioStream`` (e.g. a silent
    video) or ``EmptyAudio`` (no samples).
    """
    return np.concatenate(list(iter_audio(source)))


def iter_audio(source: str | Path | bytes, chunk_samples: int = CHUNK_SAMPLES) -> Iterator[np.ndarray]:
    """Decode lazily: yield ``(chunk_samples,)`` float32 pieces, the last one shorter.

    Memory stays flat however long the file. Errors are those of ``decode_audio``, raised as the
    iteration reaches them.
    """
    if chunk_samples < 1:
        raise ValueError(f"chunk_samples must be positive, got {chunk_samples}")
    pending: list[np.ndarray] = []
    n_pending = n_total = 0
    for piece in _decoded_pieces(source):
        pending.append(piece)
        n_pending += len(piece)
        n_total += len(piece)
        if n_pending >= chunk_samples:
            buf = np.concatenate(pending)
            n_full = n_pending - n_pending % chunk_samples
            for start in range(0, n_full, chunk_samples):
                yield buf[start : start + chunk_samples]
            pending, n_pending = [buf[n_full:]], n_pending - n_full
    if n_pending:
        yield np.concatenate(pending)
    if not n_total:
        raise EmptyAudio("the audio decodes to no samples")


def _decoded_pieces(source: str | Path | bytes) -> Iterator[np.ndarray]:
    with _open(source) as file, _open_container(file) as container:
        if not container.streams.audio:
            raise NoAudioStream("the file has no audio track")
        stream = container.streams.audio[0]
        resampler, setup = None, None
        try:
            for frame in container.decode(stream):
                if not frame.samples:
                    continue
                frame_setup = (frame.format.name, frame.layout.name, frame.sample_rate)
                if frame_setup != setup:  # a resampler refuses frames unlike its first one
                    if resampler is not None:
                        yield from _resample(resampler, None)
                    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE, options=_DOWNMIX)
                    setup = frame_setup
                yield from _resample(resampler, frame)
            if resampler is not None:
                yield from _resample(resampler, None)
        except av.FFmpegError as err:
            raise UnreadableAudio(f"cannot decode audio: {err}") from err


def _open(source: str | Path | bytes) -> io.IOBase:
    # A file object, not a path: ffmpeg would read "take:1.wav" as a URL with protocol "take".
    if isinstance(source, bytes | bytearray | memoryview):
        if not len(source):
            raise UnreadableAudio("audio is empty (0 bytes)")
        return io.BytesIO(source)
    path = Path(source)
    if not path.is_file():
        raise UnreadableAudio(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise UnreadableAudio(f"{path} is empty (0 bytes)")
    try:
        return path.open("rb")
    except OSError as err:
        raise UnreadableAudio(f"cannot open {path}: {err}") from err


def _open_container(file: io.IOBase) -> av.container.InputContainer:
    try:
        return av.open(file, metadata_errors="replace")
    except (av.FFmpegError, OSError) as err:
        raise UnreadableAudio(f"not a readable audio or video file: {err}") from err


def _resample(resampler: av.AudioResampler, frame: av.AudioFrame | None) -> Iterator[np.ndarray]:
    """Push ``frame`` (``None`` flushes) and yield what comes out, clipped to [-1, 1]; a float file's
    NaN or infinite samples make it ``UnreadableAudio`` (a NaN passes the clip, and the silence check)."""
    for out in resampler.resample(frame):
        samples = out.to_ndarray()[0]
        if not np.isfinite(samples).all():
            raise UnreadableAudio("the audio has NaN or infinite samples: the file is corrupt")
        yield np.clip(samples, -1.0, 1.0)


class ChunkResampler:
    """Live PCM at any rate and channel count in, 16 kHz mono float32 out, chunk by chunk.

    State is kept between chunks, so pushing a signal in pieces gives the same samples as pushing
    it whole. Channels are averaged. Float samples outside [-1, 1] are clipped, in and out (NaN and
    infinities are refused). At 16 kHz mono the samples in range pass through unchanged.
    """

    def __init__(self, in_rate: int, channels: int = 1):
        lo, hi = LIVE_RATE_RANGE
        if isinstance(in_rate, bool) or not isinstance(in_rate, int) or not lo <= in_rate <= hi:
            raise BadSampleRate(f"sample rate must be an integer from {lo} to {hi} Hz, got {in_rate!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= MAX_CHANNELS:
            raise BadChannelCount(f"channels must be an integer from 1 to {MAX_CHANNELS}, got {channels!r}")
        self.in_rate = in_rate
        self.channels = channels
        self._resampler: av.AudioResampler | None = None

    def push(self, pcm: np.ndarray) -> np.ndarray:
        """Convert one chunk: int16 or float32, ``(n,)`` or ``(n, channels)`` (1-D multi-channel
        input is read as interleaved). Returns ``(m,)`` float32, ``m`` about ``n * 16000 / in_rate``.
        """
        mono = self._to_mono(pcm)
        if self.in_rate == SAMPLE_RATE or not len(mono):
            return mono
        frame = av.AudioFrame.from_ndarray(mono[None, :], format="flt", layout="mono")
        frame.sample_rate = self.in_rate
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        return _joined(self._resampler, frame)

    def flush(self) -> np.ndarray:
        """Return the samples still inside the resampler's filter; the next push starts afresh."""
        resampler, self._resampler = self._resampler, None
        return np.zeros(0, np.float32) if resampler is None else _joined(resampler, None)

    def _to_mono(self, pcm: np.ndarray) -> np.ndarray:
        if not isinstance(pcm, np.ndarray) or pcm.dtype not in (np.int16, np.float32):
            kind = pcm.dtype if isinstance(pcm, np.ndarray) else type(pcm).__name__
            raise BadAudioChunk(f"audio chunks must be int16 or float32 arrays, got {kind}")
        if pcm.ndim == 1 and len(pcm) % self.channels == 0:
            pcm = pcm.reshape(-1, self.channels)
        if pcm.ndim != 2 or pcm.shape[1] != self.channels:
            raise BadAudioChunk(f"expected (n,) or (n, {self.channels}) samples, got shape {pcm.shape}")
        if pcm.dtype == np.int16:
            pcm = pcm.astype(np.float32) * np.float32(1 / 32768)
        elif not np.isfinite(pcm).all():
            raise BadAudioChunk("audio chunk contains NaN or infinite samples")
        else:  # clipped like a decoded file: a finite 3e38 overflows to inf in the channel mix
            pcm = np.clip(pcm, np.float32(-1), np.float32(1))
        if self.channels == 1:
            return pcm[:, 0].copy()
        return pcm.mean(axis=1, dtype=np.float32)


def _joined(resampler: av.AudioResampler, frame: av.AudioFrame | None) -> np.ndarray:
    """What comes out, clipped to [-1, 1] (the filter overshoots on full-scale square waves)."""
    pieces = [np.clip(out.to_ndarray()[0], -1.0, 1.0) for out in resampler.resample(frame)]
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
