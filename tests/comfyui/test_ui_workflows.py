"""The presets' UI format (what ComfyUI's template browser opens) read by ComfyUI's own frontend in
headless Chromium: it loads without a schema complaint and makes exactly the prompt of the
API-format file, which test_in_comfyui.py runs."""

from __future__ import annotations

import pytest

from tests.comfyui import frontend
from tests.comfyui.conftest import PRESETS, api_workflow, ui_workflow


@pytest.fixture(scope="module")  # Playwright's sync API keeps an event loop running: not past a module
def app_page(comfyui):
    if not frontend.CHROMIUM.exists():
        pytest.skip(f"the UI-format test needs Debian's chromium at {frontend.CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the UI-format test needs playwright")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(frontend.CHROMIUM), args=frontend.CHROMIUM_FLAGS)
        yield frontend.open_app(browser, comfyui.server.url)
        browser.close()


@pytest.mark.parametrize("name", PRESETS)
def test_the_frontend_makes_the_api_presets_prompt_from_the_ui_preset(comfyui, app_page, name):
    object_info = comfyui.http.get("/object_info").json()
    errors_before = len(app_page.errors)
    prompt = frontend.ui_to_api(app_page, ui_workflow(name))
    assert app_page.errors[errors_before:] == []
    assert app_page.get_by_text("Invalid workflow against zod schema").count() == 0
    assert frontend.same_prompt(prompt, api_workflow(name), object_info)
    assert {n["type"] for n in ui_workflow(name)["nodes"]} >= {"Note"}  # how to use it, for its user
