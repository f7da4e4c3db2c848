"""A live session's audio as it comes in: any rate and layout to 16 kHz mono, within a backlog.

``AudioIntake`` keeps one ``ChunkResampler`` while the chunks' rate and channel count stay the
same (so a signal pushed in pieces resamples as it would whole) and refuses a chunk that would
put more than ``max_backlog_s`` of audio in waiting. Where the waiting audio is counted is the
caller's: a ``streaming.Session`` counts its inbox; a session held in a worker process or on a
replica (``server.proxy``) what it last heard its host holds, plus what it has sent since.
The client's phoneme timings (``streaming.timings``) are placed here too, and ``pieces`` cuts
the client's audio where they cover it.
"""

from __future__ import annotations

import numpy as np

from sonic_rt import audio
from sonic_rt.audio.decode import ChunkResampler
from sonic_rt.errors import AudioError

from .timings import TimingsTrack

MAX_BACKLOG_S = 120.0  # queued audio a client may send ahead of playback


class AudioOverflow(AudioError):
    code = "audio_overflow"


class AudioIntake:
    """Chunks in, 16 kHz mono float32 out; not thread-safe (one per session)."""

    def __init__(self, max_backlog_s: float = MAX_BACKLOG_S) -> None:
        self.max_samples = int(max_backlog_s * audio.SAMPLE_RATE)
        self._resampler: ChunkResampler | None = None
        self.timings = TimingsTrack()

    @property
    def received(self) -> int:
        """16 kHz samples of the client's own audio taken so far (``pieces`` counts them)."""
        return self.timings.received

    def take(self, pcm: np.ndarray, sample_rate: int, channels: int, waiting: int, script=None) -> np.ndarray:
        """``pcm`` (int16 or float32, ``(n,)`` interleaved or ``(n, channels)``) at 16 kHz mono, with
        ``waiting`` 16 kHz samples already queued. Raises ``BadAudioChunk``/``BadSampleRate``/
        ``BadChannelCount`` for a bad chunk and ``AudioOverflow`` when the backlog would pass its
        limit, and ``ValueError`` for a ``script`` (the chunk's phonemes) with audio that is not
        already 16 kHz mono (its times would not be the output's); a refused chunk changes nothing."""
        if script is not None and (sample_rate != audio.SAMPLE_RATE or channels != 1):
            raise ValueError("a script goes with 16 kHz mono audio only")
        resampler = self._resampler
        if resampler is None or (resampler.in_rate, resampler.channels) != (sample_rate, channels):
            resampler = ChunkResampler(sample_rate, channels)
        incoming = np.size(pcm) // channels * audio.SAMPLE_RATE // sample_rate
        if waiting + incoming > self.max_samples:
            raise AudioOverflow(
                f"more than {self.max_samples / audio.SAMPLE_RATE:.0f} s of audio is waiting to be animated: "
                "send it at (about) real-time pace"
            )
        samples = resampler.push(pcm)
        self._resampler = resampler
        return samples

    def pieces(self, samples: np.ndarray, client: bool, script=None) -> list[tuple[np.ndarray, object]]:
        """``take``'s samples as ``(piece, script)`` pairs: the client's audio cut where its timings
        cover it (their marks as the script, else ``None``: recognised); speech the server made, or
        audio with a ``script`` of its own, whole."""
        if not client or script is not None:
            if client:
                self.timings.received += len(samples)
            return [(samples, script)]
        return self.timings.split(samples)

    def reset(self) -> None:
        """Forget the resampler's state (an interrupt drops what it held back) and the timings of
        audio not yet received."""
        self._resampler = None
        self.timings.clear()
