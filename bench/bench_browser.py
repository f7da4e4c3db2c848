"""Browser figures (issue 6): the web client in Debian chromium, driven by Playwright, against a
``sonic-rt serve`` process on loopback.

Chromium's fake microphone loops real speech (the embedded TTS: 3 s of speech, 4 s of silence).
For each transport (WebRTC, and the WebSocket fallback forced with ``?transport=ws``), ``--runs``
times: open the page, press Start (microphone input), and measure in the page:

- setup: Start pressed -> first frame shown (``requestVideoFrameCallback`` / first canvas draw);
- frames shown per second over ``--seconds``;
- the latency the page shows, sampled once a second (WebSocket: audio sent -> the frame showing
  it drawn; WebRTC: speech onsets in the audio sent -> in the face's voice received, both
  measured in the page);
- WebRTC: the mouth opening on captured frames, speech against silence (the server's VAD states);
- WebRTC: the same onsets, found by the bench's own probe (Web Audio analysers hooked into the
  page's tracks, page clock) to check the page's figure (Chrome holds the video in step with the
  audio of the same stream), and Chrome's jitter buffers.

Baselines measured in the same run: the Python client's first frame over WebSocket (setup), the
nominal 25 fps, and the session's algorithmic latency from ``ready`` (latency).

    python bench/bench_browser.py [--runs 3] [--seconds 10] [--server-args '--ice-address 127.0.0.1']
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_stream import Server, first_frame_times, pct  # noqa: E402
from tests.web.conftest import CHROMIUM, CHROMIUM_FLAGS, SILENCE_S, SPEECH_S  # noqa: E402
from tests.web.probe import (  # noqa: E402
    CANVAS_PROBE,
    drawn_fps,
    microphone_wav,
    mouth_openings,
    now_ms,
    open_page,
    presented_fps,
    pull_frames,
    speaking,
    spread,
    start_video_probe,
    steady,
)

# Speech onsets, on the page's clock, in the audio the page sends (hooked at replaceTrack) and in
# the face's voice it receives (hooked at the peer connection's track event), from the moment
# each exists: an onset is the first 2 ms poll whose level (RMS of the last 512 samples) is above
# LOUD after at least QUIET_MS below it. The page's peer connection is kept for RECEIVER_STATS.
ONSET_PROBE = """(() => {
  const LOUD = 0.02, QUIET_MS = 800;
  const onsets = (window.__onsets = {sent: [], received: []});
  let ctx = null;
  const watch = (name, track) => {
    ctx ??= new AudioContext();
    ctx.resume();
    const analyser = Object.assign(ctx.createAnalyser(), {fftSize: 512});
    ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    let lastLoud = performance.now();  // a sound already going when watching starts is no onset
    setInterval(() => {
      analyser.getFloatTimeDomainData(buf);
      if (Math.sqrt(buf.reduce((s, x) => s + x * x, 0) / buf.length) < LOUD) return;
      const now = performance.now();
      if (now - lastLoud > QUIET_MS) onsets[name].push(now);
      lastLoud = now;
    }, 2);
  };
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) {
    const pc = (window.__pc = new Native(...args));
    pc.addEventListener("track", (e) => e.track.kind === "audio" && watch("received", e.track));
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
  const replaceTrack = RTCRtpSender.prototype.replaceTrack;
  let sent = null;
  RTCRtpSender.prototype.replaceTrack = function (track) {
    if (track && track.kind === "audio" && track !== sent) watch("sent", (sent = track));
    return replaceTrack.call(this, track);
  };
})();"""

# Chrome's receive side at the end of a run: mean jitter-buffer delay (audio, video) and the audio target.
RECEIVER_STATS = """async () => {
  const out = {};
  for (const r of (await window.__pc.getStats()).values()) {
    if (r.type !== "inbound-rtp" || !r.jitterBufferEmittedCount) continue;
    const n = r.jitterBufferEmittedCount;
    out[r.kind] = {delay_ms: 1000 * r.jitterBufferDelay / n, target_ms: 1000 * (r.jitterBufferTargetDelay ?? 0) / n};
  }
  return out;
}"""

FIRST_FRAME = {
    "webrtc": "window.__probe.presented.length > 0 ? window.__probe.presented[0][0] : null",
    "ws": "window.__draws.length > 0 ? window.__draws[0] : null",
}


def round_trips(sent: list[float], received: list[float], within_ms: float = 2000) -> list[float]:
    """For each onset in the sent audio, the delay to the next onset in the received audio."""
    out = []
    for t in sent:
        later = [r - t for r in received if 0 < r - t < within_ms]
        if later:
            out.append(min(later))
    return out


def one_run(browser, server: Server, transport: str, seconds: float, analyzer) -> dict:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    try:
        page.add_init_script(CANVAS_PROBE)
        page.add_init_script(ONSET_PROBE)

        class Http:  # what open_page needs of a server
            http = f"http://127.0.0.1:{server.port}"

        open_page(page, Http, "" if transport == "webrtc" else "?transport=ws")
        start_video_probe(page)
        clicked = now_ms(page)
        page.click("#start")
        page.wait_for_function(FIRST_FRAME[transport], timeout=20_000)
        setup = page.evaluate(FIRST_FRAME[transport]) - clicked
        used = page.evaluate("window.sonic.transport")
        since = now_ms(page) + 500
        latencies = []
        for _ in range(int(seconds)):
            page.wait_for_timeout(1000)
            figures = page.evaluate("window.sonic.figures()") or {}
            if figures.get("latencyMs") is not None:
                latencies.append(figures["latencyMs"])
        if used == "webrtc":
            fps, span = presented_fps(page, since)
        else:
            fps, span = drawn_fps(page, since)
        out_figures = page.evaluate("window.sonic.figures()")
        events = page.evaluate("window.sonic.events")
        ready = next(e for e in events if e["type"] == "ready")
        out = {"transport": used, "setup_ms": setup, "fps": fps, "seconds": span,
               "latency_ms": float(np.median(latencies)) if latencies else None,
               "model_latency_ms": ready["latency_ms"],
               "server_stats": [e for e in events if e["type"] == "stats"], "page_figures": out_figures}  # fmt: skip
        if used == "webrtc":
            frames = pull_frames(page)
            opening = mouth_openings(analyzer, frames)
            talk = speaking(frames)
            out["mouth_speech"] = spread(opening[steady(frames, talk)])
            out["mouth_silence"] = spread(opening[steady(frames, ~talk)])
            out["receiver"] = page.evaluate(RECEIVER_STATS)
            onsets = page.evaluate("window.__onsets")
            out["onsets"] = onsets
            connected = setup + clicked  # audio sent before the first frame did not all reach the server
            out["round_trip_ms"] = round_trips([t for t in onsets["sent"] if t > connected], onsets["received"])
        page.click("#stop")
        return out
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15, help="per run (the microphone loops every 7 s)")
    parser.add_argument("--server-args", default="", help="extra `sonic-rt serve` arguments")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from sonic_rt.face.analysis import FaceAnalyzer

    analyzer = FaceAnalyzer()
    server = Server(2, shlex.split(args.server_args))
    results: dict = {"server_args": args.server_args}
    try:
        asyncio.run(first_frame_times(server, 2))  # warm: sample enrolled, VAD loaded
        results["python_first_frame_ms"] = float(np.median(asyncio.run(first_frame_times(server, 5))))
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
            wav = microphone_wav(Path(tmp) / "speech.wav", SPEECH_S, SILENCE_S)
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), ignore_default_args=["--mute-audio"],
                args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}"],
            )  # fmt: skip
            for transport in ("webrtc", "ws"):
                results[transport] = [one_run(browser, server, transport, args.seconds, analyzer)
                                      for _ in range(args.runs)]  # fmt: skip
            browser.close()
    finally:
        server.close()

    base = results["python_first_frame_ms"]
    print(f"\nbaselines (same run): Python client first frame over WebSocket {base:.0f} ms (median of 5); "
          f"25 fps nominal")  # fmt: skip
    for transport in ("webrtc", "ws"):
        runs = results[transport]
        setup = [r["setup_ms"] for r in runs]
        fps = [r["fps"] for r in runs]
        lat = [r["latency_ms"] for r in runs if r["latency_ms"] is not None]
        model = runs[0]["model_latency_ms"]
        kind = "/".join(sorted({(r.get("page_figures") or {}).get("latencyKind") or "none" for r in runs}))
        print(f"\n== {transport} ({', '.join(sorted({r['transport'] for r in runs}))} used), {len(runs)} runs")
        print(f"setup, Start -> first frame: median {np.median(setup):.0f} ms, max {max(setup):.0f} "
              f"({np.median(setup) / base:.1f}x the Python client's first frame)")  # fmt: skip
        print(f"frames shown: min {min(fps):.2f} fps, median {np.median(fps):.2f} ({min(fps) / 25:.3f}x nominal)")
        if lat:
            print(f"latency the page shows ({kind}): median {np.median(lat):.0f} ms, p95 of runs {pct(lat, 95):.0f} "
                  f"({np.median(lat) / model:.2f}x the model's {model:.0f} ms)")  # fmt: skip
        trips = [x for r in runs for x in r.get("round_trip_ms", [])]
        if trips:
            print(f"speech onset, microphone sent -> the face's voice received (Web Audio, page clock): "
                  f"median {np.median(trips):.0f} ms, min {min(trips):.0f}, max {max(trips):.0f} "
                  f"({len(trips)} onsets; {np.median(trips) / model:.2f}x the model's {model:.0f} ms)")  # fmt: skip
        receiver = [r["receiver"] for r in runs if r.get("receiver")]
        if receiver:
            print("Chrome's jitter buffers, mean over each run: " + "; ".join(
                f"{kind} {np.median([x[kind]['delay_ms'] for x in receiver if kind in x]):.0f} ms "
                f"(target {np.median([x[kind]['target_ms'] for x in receiver if kind in x]):.0f})"
                for kind in ("audio", "video") if any(kind in x for x in receiver)))  # fmt: skip
        if "mouth_speech" in runs[0]:
            sp = np.median([r["mouth_speech"] for r in runs])
            si = np.median([r["mouth_silence"] for r in runs])
            print(f"mouth opening spread (p90-p10, IOD): speech {sp:.3f}, silence {si:.3f} ({sp / si:.1f}x)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
