"""Choosing the portrait in the page: samples, the idle picture, uploads, consent and the errors."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import png_bytes
from tests.web.conftest import PLAYWRIGHT_MISSING
from tests.web.probe import open_page

expect = pytest.importorskip("playwright.sync_api", reason=PLAYWRIGHT_MISSING).expect

# what the page's own fetch gets from the server for an upload without consent
UPLOAD_WITHOUT_CONSENT = """async () => {
  const form = new FormData();
  const image = await (await fetch(document.getElementById("idle-image").src)).blob();
  form.append("image", image, "portrait.jpg");
  const response = await fetch("/v1/portraits", {method: "POST", body: form});
  return {status: response.status, body: await response.json()};
}"""


def texture(side: int = 384) -> np.ndarray:
    """A colour gradient with ripples: an image with no face in it."""
    y, x = np.mgrid[0:side, 0:side] / side
    ripples = 0.5 + 0.5 * np.sin(40 * x + 25 * np.sin(6 * y))
    rgb = np.stack([x, y * (0.6 + 0.4 * ripples), 1 - x * ripples], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


def test_a_sample_is_chosen_and_shown_at_rest(page, web_server, artifacts):
    open_page(page, web_server)
    sample = page.locator("#samples button").first
    expect(sample).to_have_attribute("aria-pressed", "true")
    idle = page.locator("#idle-image")
    expect(idle).to_be_visible()
    page.wait_for_function("document.getElementById('idle-image').naturalWidth > 0")
    assert page.eval_on_selector("#idle-image", "img => [img.naturalWidth, img.naturalHeight]") == [512, 512]
    expect(page.locator("#portrait-status")).to_contain_text("Ready")
    expect(page.locator("#start")).to_be_enabled()
    expect(page.locator("#fig-state")).to_have_text("idle")


def test_uploads_need_consent_and_a_face(page, web_server, astronaut, tmp_path, artifacts):
    open_page(page, web_server)
    path = tmp_path / "texture.png"
    path.write_bytes(png_bytes(texture()))
    page.set_input_files("#upload-file", str(path))

    # without the box ticked the page refuses, and so does the server
    page.click("#upload")
    expect(page.locator("#portrait-status")).to_contain_text("Please confirm that you have the right to use this face")
    refused = page.evaluate(UPLOAD_WITHOUT_CONSENT)
    assert refused["status"] == 403 and refused["body"]["error"]["code"] == "consent_required", refused

    # with it ticked, the server finds no face, and the page says so in words
    page.check("#consent")
    page.click("#upload")
    status = page.locator("#portrait-status")
    expect(status).to_have_text("No face found in that image. Try a clear, front-facing photo.", timeout=30_000)
    expect(status).to_have_attribute("data-level", "error")
    page.screenshot(path=artifacts / "portrait-no-face.png")
    # the sample chosen before stays the portrait
    expect(page.locator("#start")).to_be_enabled()
    assert page.evaluate("window.sonic.portrait").startswith("sample:")

    # a photo with a face, consent given: it becomes the portrait, its crop the idle picture
    path = tmp_path / "astronaut.png"
    path.write_bytes(png_bytes(astronaut))
    page.set_input_files("#upload-file", str(path))
    page.click("#upload")
    expect(status).to_have_text("Ready: astronaut.png.", timeout=30_000)
    assert not page.evaluate("window.sonic.portrait").startswith("sample:")
    expect(page.locator("#samples button").first).to_have_attribute("aria-pressed", "false")
    assert page.eval_on_selector("#idle-image", "img => img.src").endswith("/image.jpg")
