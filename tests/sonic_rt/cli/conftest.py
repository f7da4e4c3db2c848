"""What the command-line tests share: a portrait file and a speech file."""

import pytest

from tests.conftest import png_bytes


@pytest.fixture(scope="module")
def portrait(tmp_path_factory, astronaut):
    path = tmp_path_factory.mktemp("cli") / "astronaut.png"
    path.write_bytes(png_bytes(astronaut))
    return path


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory, sentence):
    from tests.conftest import write_wav

    return write_wav(tmp_path_factory.mktemp("cli-audio") / "speech.wav", sentence)
