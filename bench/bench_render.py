"""Render cost per frame at 512 px and 1024 px output on one core.

Two baselines, measured in the same run on the same core: the renderer without layers
(``layers=False``: the portrait warped as one picture, as before the person layer and background
plate), and one full-frame bilinear ``cv2.remap`` of the output size — the cheapest warp renderer
there could be. The ratios say what layers cost and how many such remaps one of our frames costs.

    python bench/bench_render.py [--image NAME] [--frames 200]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
from common import pin_one_core, portrait, summary, time_ms

from sonic_rt.config import GeometryParams
from sonic_rt.face.analysis import FaceAnalyzer
from sonic_rt.motion import vector
from sonic_rt.render.identity import enroll
from sonic_rt.render.renderer import Renderer


def speech_like(frames: int, seed: int = 0) -> np.ndarray:
    """A talking sequence: jaw and lip motion, blinks, slow head sway."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 25.0
    vec = vector.neutral(frames)
    jaw = np.clip(0.3 + 0.25 * np.sin(2 * np.pi * 3.1 * t) + 0.1 * rng.standard_normal(frames), 0, 0.8)
    vec[:, vector.INDEX["jaw_open"]] = jaw
    vec[:, vector.INDEX["lip_round"]] = np.clip(np.sin(2 * np.pi * 0.9 * t), 0, 1) * 0.5
    vec[:, vector.INDEX["smile"]] = 0.2 * np.sin(2 * np.pi * 0.2 * t)
    blink = (np.arange(frames) % 90) < 4
    vec[:, vector.INDEX["blink_left"]] = blink
    vec[:, vector.INDEX["blink_right"]] = blink
    vec[:, vector.INDEX["head_yaw"]] = 6 * np.sin(2 * np.pi * 0.15 * t)
    vec[:, vector.INDEX["head_pitch"]] = 3 * np.sin(2 * np.pi * 0.23 * t)
    vec[:, vector.INDEX["head_roll"]] = 2 * np.sin(2 * np.pi * 0.11 * t)
    return vec


def stages(renderer: Renderer, seq: np.ndarray) -> dict[str, float]:
    """Mean ms per frame of each stage of ``Renderer.render``."""
    totals: dict[str, float] = {}
    for vec in seq:
        renderer.render(vec, timings=totals)
    return {k: v / len(seq) for k, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="real_01_sadtalker_people_0.png")
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()

    core = pin_one_core()
    name, image = portrait(args.image)
    analyzer = FaceAnalyzer()
    seq = speech_like(args.frames)
    print(f"render cost per frame, one core (cpu {core}), portrait: {name}, {args.frames} speech-like frames")
    columns = f"{'size':>6}  {'layers':<32}{'one picture':<32}{'full-frame remap':<32}"
    print(columns + f"{'vs one picture':>15}{'vs remap':>10}")
    for size in (512, 1024):
        identity = enroll(image, GeometryParams(min_resolution=size), analyzer)
        timed = {}
        for layers in (True, False):
            renderer = Renderer(identity, layers=layers)
            renderer.render(seq[0])  # compile the rasteriser before timing
            it = iter(np.tile(seq, (2, 1)))
            timed[layers] = (renderer, time_ms(lambda r=renderer, it=it: r.render(next(it)), repeat=args.frames))
        grid = np.mgrid[0:size, 0:size].astype(np.float32)
        map_x, map_y = grid[1] + 0.3, grid[0] + 0.2
        base = time_ms(
            lambda p=identity.plate, mx=map_x, my=map_y: cv2.remap(p, mx, my, cv2.INTER_LINEAR), repeat=args.frames
        )
        ours, flat = timed[True][1], timed[False][1]
        print(f"{size:>6}  {summary(ours):<32}{summary(flat):<32}{summary(base):<32}"
              f"{np.median(ours) / np.median(flat):>14.2f}x{np.median(ours) / np.median(base):>9.2f}x")  # fmt: skip
        for layers, label in ((True, "layers"), (False, "one picture")):
            split = stages(timed[layers][0], seq[: min(100, args.frames)])
            print(f"        {label} stages: " + "  ".join(f"{k} {v:.2f} ms" for k, v in split.items()))
    print("goal: <= 8 ms per frame at 512 px on one core")


if __name__ == "__main__":
    main()
