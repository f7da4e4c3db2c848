"""A session's audio intake: resampled to 16 kHz mono with its state kept, within a backlog."""

from __future__ import annotations

import numpy as np
import pytest

from sonic_rt.errors import BadChannelCount, BadSampleRate
from streaming.intake import AudioIntake, AudioOverflow


def tone(rate: int, seconds: float) -> np.ndarray:
    return (np.sin(np.arange(int(rate * seconds)) * 2 * np.pi * 220 / rate) * 8000).astype(np.int16)


def test_pieces_resample_as_the_whole():
    whole = AudioIntake().take(tone(48000, 1.0), 48000, 1, waiting=0)
    intake = AudioIntake()
    pieces = np.concatenate([intake.take(p, 48000, 1, waiting=0) for p in np.split(tone(48000, 1.0), 50)])
    np.testing.assert_allclose(pieces, whole[: len(pieces)], atol=1e-6)


def test_a_chunk_past_the_backlog_is_refused_and_changes_nothing():
    intake = AudioIntake(max_backlog_s=1.0)
    assert len(intake.take(tone(16000, 0.5), 16000, 1, waiting=0)) == 8000
    with pytest.raises(AudioOverflow, match="more than 1 s"):
        intake.take(tone(16000, 0.6), 16000, 1, waiting=8000)
    assert len(intake.take(tone(16000, 0.5), 16000, 1, waiting=8000)) == 8000  # exactly at the limit


def test_bad_formats_are_refused():
    with pytest.raises(BadSampleRate):
        AudioIntake().take(tone(16000, 0.1), 3, 1, waiting=0)
    with pytest.raises(BadChannelCount):
        AudioIntake().take(tone(16000, 0.1), 16000, 0, waiting=0)
