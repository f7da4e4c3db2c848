"""Shared fixtures: a real portrait that ships with scikit-image, the face analyser, shared data."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    # The motion model is small: one thread is fastest, and several OpenMP threads spin-waiting
    # on a busy 2-core machine can slow a run a hundredfold.
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def audit_home(tmp_path_factory):
    """Commands that keep an audit log by default keep it in a temporary folder, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SONIC_RT_HOME", str(tmp_path_factory.mktemp("sonic-rt-home")))
        yield


SHARED_DATA = Path(os.environ.get("SONIC_RT_SHARED_DATA", REPO.parent / "shared" / "data"))


def png_bytes(image: np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real 512 x 512 RGB portrait photo (Eileen Collins), shipped inside scikit-image."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def analyzer():
    from sonic_rt.face.analysis import FaceAnalyzer

    fa = FaceAnalyzer()
    yield fa
    fa.close()


@pytest.fixture(scope="session")
def astronaut_identity(astronaut, analyzer):
    from sonic_rt.config import GeometryParams
    from sonic_rt.render.identity import enroll

    return enroll(astronaut, GeometryParams(), analyzer)


@pytest.fixture(scope="session")
def shipped():
    """The motion model and idle statistics shipped in the package."""
    from sonic_rt.motion.stream import load_model

    return load_model()


@pytest.fixture(scope="session")
def shared_images() -> list[Path]:
    images = sorted((SHARED_DATA / "images").glob("*")) if SHARED_DATA.is_dir() else []
    if not images:
        pytest.skip(f"shared evaluation data not found at {SHARED_DATA} (set SONIC_RT_SHARED_DATA)")
    return images


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    """Mono float samples in [-1, 1] -> a 16-bit PCM WAV file."""
    import wave

    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


@pytest.fixture(scope="session")
def sentence() -> np.ndarray:
    """About 2.7 s of real-sounding speech at 16 kHz (espeak-ng), with pauses at both ends."""
    tts = pytest.importorskip("sonic_rt.audio.tts")
    try:
        return tts.synthesize("Hello there, and welcome to the show.", voice="en-us").audio
    except tts.TTSUnavailable as err:
        pytest.skip(str(err))
