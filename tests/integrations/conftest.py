"""Fixtures for the adapters' tests: an avatar (its own audit log, a small frame), speech with its phonemes."""

from __future__ import annotations

import numpy as np
import pytest

from integrations.backend import AvatarConfig
from sonic_rt.audio import SAMPLES_PER_FRAME
from sonic_rt.config import GeometryParams


@pytest.fixture
def config(tmp_path) -> AvatarConfig:
    return AvatarConfig(params={"seed": 11}, geometry=GeometryParams(min_resolution=256), agent="test-agent",
                        audit_db=tmp_path / "audit.db")  # fmt: skip


@pytest.fixture(scope="session")
def speech():
    """About 1.4 s of espeak-ng speech at 16 kHz that ends in speech (no closing pause)."""
    tts = pytest.importorskip("sonic_rt.audio.tts")
    try:
        return tts.synthesize("Hello there, how are you?", voice="en-us", end_pause=False)
    except tts.TTSUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def pcm(speech) -> np.ndarray:
    """The speech as int16, a whole number of frames long (as a TTS's chunks of one frame each add up)."""
    n = len(speech.audio) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME
    return np.round(np.clip(speech.audio[:n], -1, 1) * 32767).astype(np.int16)


def chunks(pcm: np.ndarray, size: int = SAMPLES_PER_FRAME) -> list[np.ndarray]:
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]
