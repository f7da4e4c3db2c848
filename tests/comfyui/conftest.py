"""A real ComfyUI for the tests here: one per session, built from ../shared/comfyui's snapshot (cached
outside the repository, see ``harness``) and started on loopback with ``comfyui_sonic_rt`` linked
into its ``custom_nodes``. Everything here skips, saying why, when the snapshot is absent."""

from __future__ import annotations

import json

import pytest

from tests.comfyui import harness
from tests.conftest import png_bytes, write_wav

WORKFLOWS = harness.NODE_PACK / "example_workflows"
PRESETS = ("quick", "high_quality")


def api_workflow(name: str) -> dict:
    """A shipped preset in ComfyUI's API format (what POST /prompt takes)."""
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


def ui_workflow(name: str) -> dict:
    """A shipped preset in ComfyUI's UI format (what the frontend saves, loads and lists as a template)."""
    return json.loads((WORKFLOWS / f"{name}.json").read_text())


def node_of(prompt: dict, class_type: str) -> dict:
    (node,) = [n for n in prompt.values() if n["class_type"] == class_type]
    return node


@pytest.fixture(scope="session")
def comfyui_build():
    if harness.snapshot() is None:
        pytest.skip(f"no ComfyUI snapshot (ComfyUI-*.tar.gz) in {harness.SHARED_COMFYUI}: the real-ComfyUI tests "
                    "need ../shared/comfyui")  # fmt: skip
    return harness.ensure_build()


@pytest.fixture(scope="session")
def comfyui_server(comfyui_build, tmp_path_factory):
    with harness.Server(comfyui_build, tmp_path_factory.mktemp("comfyui")) as server:
        yield server


@pytest.fixture(scope="session")
def comfyui(comfyui_server, astronaut, sentence, tmp_path_factory):
    """A client of the running ComfyUI, with the portrait and the speech uploaded as the presets name them."""
    client = harness.Client(comfyui_server)
    client.upload("portrait.png", png_bytes(astronaut))
    client.upload("speech.wav", write_wav(tmp_path_factory.mktemp("speech") / "speech.wav", sentence).read_bytes())
    yield client
    client.close()
