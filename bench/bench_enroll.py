"""Enrolment time for a 1024 px photo with the models already loaded.

Baseline, in the same run: the bare MediaPipe face-mesh call on the same image (what any
landmark-based system pays at minimum). Enrolment adds detection, decoding, the crop, the warp
mesh, the deformation fields, the mouth palette, the region raster and the layers (person
segmentation, matte, background plate: ``layers`` in the split).

    python bench/bench_enroll.py [--image NAME] [--repeat 10]
"""

from __future__ import annotations

import argparse
import io
import statistics

import cv2
from common import pin_one_core, portrait, summary, time_ms
from PIL import Image

from sonic_rt.config import GeometryParams
from sonic_rt.face.analysis import FaceAnalyzer
from sonic_rt.render.identity import enroll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="ai_01_sadtalker_art_5.png")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()

    core = pin_one_core()
    name, image = portrait(args.image)
    if max(image.shape[:2]) != 1024:
        scale = 1024 / max(image.shape[:2])
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    encoded = buf.getvalue()
    analyzer = FaceAnalyzer()
    import mediapipe as mp

    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
    print(f"enrolment of a {image.shape[1]}x{image.shape[0]} photo ({name}), one core (cpu {core}), models loaded")
    full = time_ms(lambda: enroll(encoded, GeometryParams(), analyzer), repeat=args.repeat, warmup=2)
    from_array = time_ms(lambda: enroll(image, GeometryParams(), analyzer), repeat=args.repeat, warmup=1)
    base = time_ms(lambda: mesh.process(image), repeat=args.repeat, warmup=1)
    parts = enroll(encoded, GeometryParams(), analyzer).timings_ms
    ratio = statistics.median(full) / statistics.median(base)
    print(f"  enroll from PNG bytes   {summary(full)}   ratio to baseline {ratio:.2f}x")
    print(f"  enroll from RGB array   {summary(from_array)}")
    print(f"  baseline: face mesh     {summary(base)}")
    print("  split: " + "  ".join(f"{k} {v:.1f} ms" for k, v in parts.items()))
    print("goal: <= 1000 ms")


if __name__ == "__main__":
    main()
