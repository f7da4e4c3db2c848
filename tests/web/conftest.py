"""The browser client end to end: Debian chromium driven by Playwright against a real server on loopback.

Chromium's fake microphone plays a WAV of real speech (the embedded TTS: 3 s of speech, 4 s of
silence, looped by Chrome), so the server's voice activity detection and the face both see speech.
Screenshots of key moments go to ``test-artifacts/web/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "web"
SPEECH_S, SILENCE_S = 3.0, 4.0  # the fake microphone's loop
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip

PLAYWRIGHT_MISSING = "browser tests need the playwright package (pip install playwright)"


def server_settings():
    from server.state import Settings

    return Settings(max_sessions=2, ice_addresses=("127.0.0.1",))


@pytest.fixture(scope="session")
def web_server():
    from tests.server.conftest import LiveServer

    with LiveServer(server_settings()) as live:
        yield live


@pytest.fixture(scope="session")
def fake_microphone(tmp_path_factory) -> Path:
    """A WAV Chrome loops as its microphone: SPEECH_S of TTS speech, then SILENCE_S of silence."""
    tts = pytest.importorskip("sonic_rt.audio.tts")
    from tests.web.probe import microphone_wav

    try:
        return microphone_wav(tmp_path_factory.mktemp("microphone") / "speech.wav", SPEECH_S, SILENCE_S)
    except tts.TTSUnavailable as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")  # Playwright's sync API keeps an event loop running: not past a module
def browser(fake_microphone):
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason=PLAYWRIGHT_MISSING)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={fake_microphone}"],
            ignore_default_args=["--mute-audio"],  # the face's speech is part of what is tested
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page; uncaught script errors fail the test; a session left running is stopped."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    yield page
    try:
        if page.locator("#stop").is_enabled(timeout=1000):
            page.click("#stop", timeout=2000)
            page.wait_for_function("window.sonic.state === 'stopped'", timeout=3000)
    finally:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS
