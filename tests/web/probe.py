"""What the tests do in the page and measure there, and on the frames they pull out of it.

``start_video_probe`` runs inside the page: in ``requestVideoFrameCallback`` it notes every frame
the <video> presents and keeps every ``every``-th one as a JPEG with its time and the page's state
(speaking or not, from the server's speech_start/speech_end events). ``mouth_openings`` measures
the inner-lip gap over the inter-ocular distance on those frames with the project's own landmarks.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

VIDEO_PROBE = """({every, side}) => {
  const video = document.getElementById("video");
  const canvas = Object.assign(document.createElement("canvas"), {width: side, height: side});
  const draw = canvas.getContext("2d");
  const probe = (window.__probe = {presented: [], frames: [], stop: false});
  let n = 0;
  const onFrame = (now, meta) => {
    if (probe.stop) return;
    probe.presented.push([now, meta.presentedFrames]);
    if (n++ % every === 0) {
      draw.drawImage(video, 0, 0, side, side);
      probe.frames.push({t: now, state: window.sonic.state, jpeg: canvas.toDataURL("image/jpeg", 0.9)});
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}"""

# Counts the frames the WebSocket player draws on its canvas (installed before the page loads).
CANVAS_PROBE = """(() => {
  const draws = (window.__draws = []);
  const drawImage = CanvasRenderingContext2D.prototype.drawImage;
  CanvasRenderingContext2D.prototype.drawImage = function (...args) {
    if (this.canvas.id === "canvas") draws.push(performance.now());
    return drawImage.apply(this, args);
  };
})();"""


@dataclass(frozen=True)
class Frame:
    t: float  # page clock, ms
    state: str
    image: np.ndarray  # RGB


def open_page(page, server, query: str = "") -> None:
    """The client at ``/`` (``query``: e.g. ``?transport=ws``), once it has enrolled its first sample."""
    page.goto(f"{server.http}/{query}")
    page.wait_for_function("window.sonic && window.sonic.portrait !== null", timeout=30_000)


def set_slider(page, selector: str, value: float) -> None:
    """Move a range input as a hand would (Playwright cannot fill ranges)."""
    page.eval_on_selector(selector, "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", value)


def record(artifacts: Path, name: str, figures: dict) -> None:
    """Keep the figures a test measured (test-artifacts/web/figures.json) for people to read."""
    path = artifacts / "figures.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**known, name: figures}, indent=2))


def start_video_probe(page, every: int = 2, side: int = 512) -> None:
    page.evaluate(VIDEO_PROBE, {"every": every, "side": side})


def now_ms(page) -> float:
    return page.evaluate("performance.now()")


def presented_fps(page, since_ms: float) -> tuple[float, float]:
    """Frames per second the <video> presented since ``since_ms`` (page clock), and over how many seconds."""
    presented = [p for p in page.evaluate("window.__probe.presented") if p[0] >= since_ms]
    (t0, n0), (t1, n1) = presented[0], presented[-1]
    return (n1 - n0) / ((t1 - t0) / 1000), (t1 - t0) / 1000


def drawn_fps(page, since_ms: float) -> tuple[float, float]:
    """Frames per second the WebSocket player drew on its canvas since ``since_ms`` (``CANVAS_PROBE``),
    and over how many seconds."""
    draws = [t for t in page.evaluate("window.__draws") if t >= since_ms]
    seconds = (draws[-1] - draws[0]) / 1000
    return (len(draws) - 1) / seconds, seconds


def microphone_wav(path: Path, speech_s: float, silence_s: float) -> Path:
    """A WAV for Chrome's fake microphone (it loops it): ``speech_s`` of TTS speech, then ``silence_s``
    of silence. Raises ``TTSUnavailable`` without espeak-ng."""
    from sonic_rt.audio import tts
    from tests.conftest import write_wav

    speech = tts.synthesize("Hello there, and welcome to the show. Nice to see you.", "en-us").audio
    rate = 16000
    loop = np.zeros(int((speech_s + silence_s) * rate), np.float32)
    speech = speech[: int(speech_s * rate)]
    loop[: len(speech)] = 0.9 * speech / max(1e-6, float(np.abs(speech).max()))
    return write_wav(path, loop, rate)


def pull_frames(page, stop: bool = True) -> list[Frame]:
    if stop:
        page.evaluate("window.__probe.stop = true")
    frames = []
    for f in page.evaluate("window.__probe.frames"):
        data = base64.b64decode(f["jpeg"].split(",", 1)[1])
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        frames.append(Frame(f["t"], f["state"], cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return frames


def mouth_opening(analyzer, image: np.ndarray) -> float | None:
    """Inner-lip gap over inter-ocular distance (None where no face is found)."""
    from sonic_rt import measure

    points = analyzer.landmarks_only(image)
    return None if points is None else measure.mouth_opening(points)


def mouth_openings(analyzer, frames: list[Frame]) -> np.ndarray:
    values = [mouth_opening(analyzer, f.image) for f in frames]
    assert sum(v is None for v in values) <= len(values) // 10, "no face found in many captured frames"
    return np.array([np.nan if v is None else v for v in values])


def speaking(frames: list[Frame], bridge_ms: float = 600) -> np.ndarray:
    """Mask of the frames inside speech: the page's state, with pauses shorter than ``bridge_ms``
    between two stretches of speech bridged (voice activity flickers off between words)."""
    mask = np.array([f.state == "speaking" for f in frames])
    t = np.array([f.t for f in frames])
    spoken = np.flatnonzero(mask)
    for a, b in zip(spoken[:-1], spoken[1:], strict=True):
        if b - a > 1 and t[b] - t[a] < bridge_ms:
            mask[a:b] = True
    return mask


def steady(frames: list[Frame], mask: np.ndarray, margin_ms: float = 500) -> np.ndarray:
    """``mask`` without the frames closer than ``margin_ms`` to a frame where ``mask`` changes."""
    t = np.array([f.t for f in frames])
    changes = t[1:][mask[1:] != mask[:-1]]
    far = np.ones(len(frames), bool)
    for c in changes:
        far &= np.abs(t - c) >= margin_ms
    return mask & far


def spread(values: np.ndarray) -> float:
    """p90 - p10: how far the mouth moves (robust to a stray landmark fit)."""
    values = values[~np.isnan(values)]
    return float(np.percentile(values, 90) - np.percentile(values, 10))


def save_frames(frames: list[Frame], path: Path, n: int = 8) -> None:
    """A strip of ``n`` frames spread over ``frames``, for a person to look at."""
    picks = [frames[i] for i in np.linspace(0, len(frames) - 1, n).round().astype(int)]
    strip = np.concatenate([cv2.resize(f.image, (192, 192)) for f in picks], axis=1)
    cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
