"""The preset workflows in a real ComfyUI against the same nodes called directly, in the same run.

A 10 s clip (the embedded voice reading a paragraph, cut to 10.0 s) and scikit-image's astronaut
portrait. For each preset ("quick": 512 px, 2 steps, 2-frame blocks; "high quality": 1024 px, 4
steps, 8-frame blocks, smoothing), the API-format workflow shipped in
``comfyui_sonic_rt/example_workflows/api/`` is POSTed to ComfyUI's ``/prompt`` with consent set,
and the time from the POST to a finished ``/history`` entry is taken: LoadImage, LoadAudio,
sonic-rt pre-data, sonic-rt sampler, CreateVideo, SaveVideo (H.264 + AAC) and the watermark
preview, as a user runs it. Each measured run uploads the portrait under a new name, so ComfyUI's
cache reuses nothing and every node runs; one warm-up run per preset comes first (model loading).

Baseline, interleaved with those runs: ``SonicRTPreData.prepare`` + ``SonicRTSampler.sample`` called
in this process with the same inputs, tensors as LoadImage and LoadAudio make them (after their own
warm-up). The difference is what ComfyUI adds: its loaders, the IMAGE batch handed on, and Save
Video's encoding of it.

ComfyUI is the tests' build (``tests/comfyui/harness.py``: built once into a cache outside the
repository from ``../shared/comfyui``'s snapshot, about 2-3 min the first time).

    python bench/bench_comfyui.py [--runs 2] [--seconds 10] [--json figures.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.comfyui import harness  # noqa: E402

PRESETS = ("quick", "high_quality")
TEXT = ("The quick brown fox jumps over the lazy dog. A talking portrait made on a CPU says every word of this "
        "sentence, with the lips closing for each b, p and m. Pack my box with five dozen liquor jugs, and "
        "then read the whole paragraph once more, slowly and clearly, for the people who read lips.")  # fmt: skip


def speech(seconds: float) -> np.ndarray:
    from sonic_rt.audio import tts

    audio = tts.synthesize(TEXT, "en-us").audio
    n = int(round(seconds * tts.SAMPLE_RATE))
    if len(audio) < n:
        raise SystemExit(f"the text speaks {len(audio) / tts.SAMPLE_RATE:.1f} s, under the {seconds:g} s asked")
    return audio[:n].astype(np.float32)


def preset(name: str, portrait: str) -> dict:
    prompt = json.loads((harness.NODE_PACK / "example_workflows" / "api" / f"{name}.json").read_text())
    for node in prompt.values():
        if node["class_type"] == "SonicRTPreData":
            node["inputs"]["consent"] = True
        if node["class_type"] == "LoadImage":
            node["inputs"]["image"] = portrait
    return prompt


def in_comfyui(client: harness.Client, name: str, png: bytes, run: str) -> float:
    uploaded = client.upload(f"portrait-{name}-{run}.png", png)
    t0 = time.perf_counter()
    entry = client.wait(client.queue(preset(name, uploaded)), timeout=600)
    wall = time.perf_counter() - t0
    if entry["status"]["status_str"] != "success":
        raise SystemExit(f"{name}: ComfyUI run failed: {entry['status']}")
    return wall


def direct(name: str, image, audio) -> float:
    from sonic_rt.comfyui import SonicRTPreData, SonicRTSampler

    inputs = {n["class_type"]: n["inputs"] for n in preset(name, "").values()}
    pre = {k: v for k, v in inputs["SonicRTPreData"].items() if not isinstance(v, list)}
    sampling = {k: v for k, v in inputs["SonicRTSampler"].items() if not isinstance(v, list)}
    t0 = time.perf_counter()
    (data,) = SonicRTPreData().prepare(image, audio, **pre)
    SonicRTSampler().sample(data, **sampling)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if harness.snapshot() is None:
        raise SystemExit(f"no ComfyUI snapshot in {harness.SHARED_COMFYUI}: this bench needs ../shared/comfyui")

    import torch
    from skimage import data as skdata

    from tests.conftest import png_bytes, write_wav

    torch.set_num_threads(1)
    astronaut = skdata.astronaut()
    samples = speech(args.seconds)
    image = torch.from_numpy(astronaut.astype(np.float32) / 255.0)[None]  # as LoadImage: (1, H, W, 3)
    audio = {"waveform": torch.from_numpy(samples)[None, None], "sample_rate": 16000}  # as LoadAudio
    build = harness.ensure_build(log=lambda line: print(line, file=sys.stderr))
    print(f"ComfyUI {build.root} ({'cached' if build.build_s is None else f'built in {build.build_s:.0f} s'}); "
          f"{args.seconds:g} s clip, astronaut 512 px, {args.runs} runs per preset after one warm-up")
    figures = {}
    with tempfile.TemporaryDirectory() as tmp, harness.Server(build, Path(tmp) / "comfyui") as server:
        client = harness.Client(server)
        client.upload("speech.wav", write_wav(Path(tmp) / "speech.wav", samples).read_bytes())
        png = png_bytes(astronaut)
        for name in PRESETS:
            in_comfyui(client, name, png, "warm")
            direct(name, image, audio)
            comfy, plain = [], []
            for run in range(args.runs):
                comfy.append(in_comfyui(client, name, png, str(run)))
                plain.append(direct(name, image, audio))
            c, d = statistics.median(comfy), statistics.median(plain)
            figures[name] = {"comfyui_s": c, "direct_s": d, "ratio": c / d, "comfyui_runs": comfy, "direct_runs": plain}
            print(f"{name:13} POST -> /history {c:6.2f} s   nodes called directly {d:6.2f} s   {c / d:.2f}x   "
                  f"({args.seconds / c:.2f}x real time in ComfyUI)")  # fmt: skip
        client.close()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
