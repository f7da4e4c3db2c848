"""ComfyUI's own frontend (the comfyui-frontend-package the snapshot pins, served by the running
ComfyUI) in headless Chromium: the presets' UI format is written and read by it, not by a copy of
its rules. ``api_to_ui`` loads an API-format workflow into the graph (as dropping the file on the
page does) and saves the graph; ``ui_to_api`` loads a saved workflow and turns it into the prompt
the Queue button would POST.

    python -m tests.comfyui.frontend     # write example_workflows/NAME.json from example_workflows/api/NAME.json
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
VIEWPORT = {"width": 1600, "height": 900}

_API_TO_UI = """(api) => {
    app.loadApiJson(api, "preset");
    return app.graph.serialize();
}"""
_UI_TO_API = """async (ui) => {
    await app.loadGraphData(ui, true, true, null, {showMissingNodesDialog: false, showMissingModelsDialog: false});
    return (await app.graphToPrompt()).output;
}"""


def open_app(browser, url: str):
    """A page with ComfyUI's frontend loaded and its graph ready; uncaught page errors are kept in ``page.errors``."""
    page = browser.new_page(viewport=VIEWPORT)
    page.errors = []
    page.on("pageerror", lambda err: page.errors.append(str(err)))
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph && "
                           "LiteGraph.registered_node_types['SonicRTSampler']")  # fmt: skip
    return page


def api_to_ui(page, api: dict) -> dict:
    return page.evaluate(_API_TO_UI, api)


def ui_to_api(page, ui: dict) -> dict:
    return page.evaluate(_UI_TO_API, ui)


def same_prompt(a: dict, b: dict) -> bool:
    """Two API-format prompts that make the same run (titles in ``_meta`` aside)."""

    def strip(prompt: dict) -> dict:
        return {k: {"class_type": n["class_type"], "inputs": n["inputs"]} for k, n in prompt.items()}

    return strip(a) == strip(b)


def main() -> None:
    from playwright.sync_api import sync_playwright

    from tests.comfyui import harness

    folder = harness.NODE_PACK / "example_workflows"
    with (
        tempfile.TemporaryDirectory() as base,
        harness.Server(harness.ensure_build(), Path(base)) as server,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = open_app(browser, server.url)
        for path in sorted((folder / "api").glob("*.json")):
            api = json.loads(path.read_text())
            ui = api_to_ui(page, api)
            if not same_prompt(ui_to_api(page, ui), api):
                raise SystemExit(f"{path.name}: the frontend does not make the same prompt from what it saved")
            (folder / path.name).write_text(json.dumps(ui, indent=2) + "\n")
            print(f"wrote {folder / path.name}")
        browser.close()


if __name__ == "__main__":
    main()
