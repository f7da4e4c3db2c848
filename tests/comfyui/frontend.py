"""ComfyUI's own frontend (the comfyui-frontend-package the snapshot pins, served by the running
ComfyUI) in headless Chromium: the presets' UI format is written and read by it, not by a copy of
its rules. ``api_to_ui`` loads an API-format workflow into the graph (as dropping the file on the
page does) and saves the graph; ``ui_to_api`` loads a saved workflow and turns it into the prompt
the Queue button would POST.

    python -m tests.comfyui.frontend     # write example_workflows/NAME.json from example_workflows/api/NAME.json
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
VIEWPORT = {"width": 1600, "height": 900}
NOTE = "\n".join([
    "1. Portrait: upload one photo with one face. Speech: upload the audio (any format ffmpeg reads).",
    "2. sonic-rt pre-data: set consent to true to confirm that you may use this face and that the person shown "
    "agreed to it being animated. Check the duration (0 = the audio's length), min_resolution and expand_ratio.",
    "3. sonic-rt sampler: steps, scales, lip-sync offset (calibration) and smoothing. watermark -1 draws a fresh "
    "invisible watermark payload each run, so the sampler runs again every time you queue; a fixed payload lets "
    "ComfyUI reuse the frames while nothing changes.",
    "4. Queue. The MP4 (H.264 + AAC) is saved under output/sonic-rt/. Cancel stops the sampler within a few frames.",
])

_API_TO_UI = """([api, note]) => {
    app.loadApiJson(api, "preset");
    for (const node of app.graph._nodes) {
        for (const widget of node.widgets ?? []) {
            if (widget.name === "control_after_generate") widget.value = "fixed";  // a preset repeats itself
        }
    }
    if (note) {
        const box = LiteGraph.createNode("Note");
        box.pos = [100, 560];
        box.size = [640, 190];
        box.title = "How to use this preset";
        box.widgets[0].value = note;
        app.graph.add(box);
    }
    return JSON.stringify(app.graph.serialize());  // as the frontend saves it: no undefined fields
}"""
_UI_TO_API = """async (ui) => {
    await app.loadGraphData(ui, true, true, null, {showMissingNodesDialog: false, showMissingModelsDialog: false});
    return (await app.graphToPrompt()).output;
}"""


def open_app(browser, url: str):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    """A page with ComfyUI's frontend loaded and its graph ready; uncaught page errors are kept in ``page.errors``."""
    page = browser.new_page(viewport=VIEWPORT)
    page.errors = []
    page.on("pageerror", lambda err: page.errors.append(str(err)))
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph && "
                           "LiteGraph.registered_node_types['SonicRTSampler']")  # fmt: skip
    dialog = page.get_by_text("Get Started with a Template")  # the template browser a first visit opens
    with contextlib.suppress(PlaywrightTimeout):
        dialog.wait_for(timeout=5_000)
        page.keyboard.press("Escape")
        dialog.wait_for(state="hidden", timeout=5_000)
    return page


def api_to_ui(page, api: dict, note: str | None = None) -> dict:
    """The graph the frontend makes of ``api``, seeds fixed, with a note for its user, as it saves it."""
    return json.loads(page.evaluate(_API_TO_UI, [api, note]))


def ui_to_api(page, ui: dict) -> dict:
    return page.evaluate(_UI_TO_API, ui)


def declared_inputs(prompt: dict, object_info: dict) -> dict:
    """The prompt with only what ComfyUI reads: each node's class and its declared inputs. The
    frontend also sends its own widgets' values (LoadAudio's player as ``audioUI``), which ComfyUI
    ignores; titles in ``_meta`` are for people."""
    out = {}
    for key, node in prompt.items():
        spec = object_info[node["class_type"]]["input"]
        names = {*spec.get("required", {}), *spec.get("optional", {})}
        out[key] = {"class_type": node["class_type"], "inputs": {k: v for k, v in node["inputs"].items() if k in names}}
    return out


def same_prompt(a: dict, b: dict, object_info: dict) -> bool:
    """Two API-format prompts that make the same run."""
    return declared_inputs(a, object_info) == declared_inputs(b, object_info)


def main() -> None:
    import httpx
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
        object_info = httpx.get(f"{server.url}/object_info", timeout=60).json()
        for path in sorted((folder / "api").glob("*.json")):
            api = json.loads(path.read_text())
            ui = api_to_ui(page, api, NOTE)
            if not same_prompt(ui_to_api(page, ui), api, object_info):
                raise SystemExit(f"{path.name}: the frontend does not make the same prompt from what it saved")
            (folder / path.name).write_text(json.dumps(ui, indent=2) + "\n")
            page.evaluate("async (ui) => { await app.loadGraphData(ui); }", ui)
            shots = harness.REPO / "test-artifacts" / "comfyui"
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / f"workflow-{path.stem}.png"))
            print(f"wrote {folder / path.name}")
        browser.close()


if __name__ == "__main__":
    main()
