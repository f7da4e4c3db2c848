"""Lip-sync on real talking videos, measured by an independent face-landmark model.

For every ``videos/av_*`` clip of ../shared/data: its first frame is the portrait and its own
audio the input. The product's own core (``sonic_rt.animator.Animator``: motion, lip-sync
offset, retargeting, rendering) makes every frame at 512 px, and MediaPipe
measures the mouth opening (inner-lip gap / inter-ocular distance) on the rendered frames; the
same measure on the real video is the ground truth. Per clip:

- ``r``: Pearson r between generated and real mouth opening (the headline figure);
- ``lag``: the shift (ms, within +-200) that maximises that r, + meaning ours comes late;
- ``r_env``: r between generated mouth opening and the speech loudness;
- ``sil``: mean generated opening over the silent frames (loudness 35 dB under the clip's peak),
  beside the real speaker's (``sil_real``).

The baseline, run in the same pass on the same portraits: mouth opening = speech loudness
(dB envelope mapped to the jaw). Means are printed for every clip and for the clips whose
audio-visual coupling check in SOURCES.tsv says COUPLED.

    python bench/bench_lipsync.py [--steps 4] [--block 8] [--offset-ms 0] [--clips av_01,av_03] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import av
import numpy as np
import torch
from common import SHARED_DATA

from sonic_rt import motion
from sonic_rt.animator import Animator
from sonic_rt.audio import FPS, SAMPLES_PER_FRAME, decode_audio
from sonic_rt.config import GeometryParams, MotionParams, VideoParams
from sonic_rt.errors import SonicError
from sonic_rt.face import FaceAnalyzer
from sonic_rt.identity import build_identity, sha256_of
from sonic_rt.measure import best_lag, mouth_opening, pearson
from sonic_rt.motion_stream import load_model
from sonic_rt.renderer import Renderer
from sonic_rt.retarget import to_portrait
from sonic_rt.train.track import load_or_track, speech_envelope

CACHE = Path.home() / ".cache" / "sonic-rt" / "bench"
MAX_LAG = 5  # frames: +-200 ms
SILENCE_DB = 35.0


def coupled_clips() -> set[str]:
    out = set()
    for line in (SHARED_DATA / "SOURCES.tsv").read_text().splitlines():
        if line.startswith("videos/av_") and "COUPLED" in line:
            out.add(Path(line.split("\t")[0]).stem)
    return out


def first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return frame.to_ndarray(format="rgb24")
    raise ValueError(f"{path} has no video frames")


def openings(frames_landmarks: list[np.ndarray | None]) -> np.ndarray:
    return np.array([mouth_opening(p) if p is not None and np.isfinite(p).all() else np.nan for p in frames_landmarks])


def loudness_motion(env_db: np.ndarray) -> np.ndarray:
    """Baseline: jaw opening proportional to loudness over the clip's top 40 dB."""
    top = np.percentile(env_db, 98)
    vec = motion.neutral(len(env_db))
    vec[:, motion.INDEX["jaw_open"]] = np.clip((env_db - (top - 40.0)) / 40.0, 0.0, 1.0) * 0.5
    return vec


def render_openings(renderer: Renderer, analyzer: FaceAnalyzer, absolute: np.ndarray, own_gap: float) -> np.ndarray:
    rel = to_portrait(absolute, own_gap)
    return openings([analyzer.landmarks_only(renderer.render(v)) for v in rel])


def scores(gen: np.ndarray, real: np.ndarray, env: np.ndarray, silent: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(gen) & np.isfinite(real)
    lag, r_best = best_lag(real[ok], gen[ok], MAX_LAG)
    g = np.nan_to_num(gen, nan=float(np.nanmedian(gen)))
    return {
        "r": pearson(gen[ok], real[ok]),
        "lag_ms": lag * 1000 / FPS,
        "r_best": r_best,
        "r_env": pearson(g, env),
        "sil": float(np.nanmean(gen[silent])) if silent.any() else float("nan"),
    }


def run_clip(path: Path, model, idle, params: MotionParams, video: VideoParams, analyzer: FaceAnalyzer) -> dict:
    real = load_or_track(path, CACHE, lambda: analyzer)
    real_open = openings(list(real.landmarks))
    audio = decode_audio(path)
    n = min(len(real_open), len(audio) // SAMPLES_PER_FRAME)
    real_open = real_open[:n]
    env = speech_envelope(audio, n)
    silent = env < env.max() - SILENCE_DB
    image = first_frame(path)
    ident = build_identity(image, analyzer.analyze(image), GeometryParams(), sha256_of(image))
    renderer = Renderer(ident)
    own_gap = ident.own_gap / ident.iod
    animator = Animator(ident, model, idle, params, video)
    frames = [*animator.push(audio[: n * SAMPLES_PER_FRAME]), *animator.finish(n)]
    motion_ms = animator.timings_ms["motion"] / n
    gen_open = openings([analyzer.landmarks_only(f.image) for f in frames])
    gen = scores(gen_open, real_open, env, silent)
    base = scores(render_openings(renderer, analyzer, loudness_motion(env), own_gap), real_open, env, silent)
    real_sil = float(np.nanmean(real_open[silent])) if silent.any() else float("nan")
    return {"clip": path.stem, "frames": n, "model": gen, "loudness": base, "sil_real": real_sil,
            "motion_ms_per_frame": motion_ms}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=MotionParams.inference_steps)
    ap.add_argument("--block", type=int, default=MotionParams.block_frames)
    ap.add_argument("--guidance", type=float, default=MotionParams.guidance)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--offset-ms", type=float, default=VideoParams.lip_sync_offset_ms, help="lip_sync_offset_ms")
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--clips", default="", help="comma-separated name prefixes (default: every av_* clip)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)  # the model is small; OpenMP threads only contend with MediaPipe's
    videos = sorted((SHARED_DATA / "videos").glob("av_*.mp4"))
    if not videos:
        raise SystemExit(f"no av_* videos under {SHARED_DATA}/videos (set SONIC_RT_SHARED_DATA)")
    if args.clips:
        videos = [v for v in videos if v.name.startswith(tuple(args.clips.split(",")))]
    model, idle = load_model(args.weights) if args.weights else load_model()
    params = MotionParams(inference_steps=args.steps, block_frames=args.block, guidance=args.guidance, seed=args.seed)
    coupled = coupled_clips()
    analyzer = FaceAnalyzer()
    rows = []
    head = f"{'clip':44s} {'frames':>6s} | {'r':>6s} {'lag':>5s} {'r_env':>6s} {'sil':>5s} | {'base r':>6s} {'lag':>5s}"
    print(head + f" {'r_env':>6s} {'sil':>5s} | {'sil_real':>8s}")
    for path in videos:
        try:
            row = run_clip(path, model, idle, params, VideoParams(lip_sync_offset_ms=args.offset_ms), analyzer)
        except SonicError as err:  # e.g. no usable face in the first frame: say so, go on
            print(f"{path.stem[:43]:43s}  skipped: {err.code}: {err}", flush=True)
            continue
        row["coupled"] = row["clip"] in coupled
        rows.append(row)
        m, b = row["model"], row["loudness"]
        mark = "*" if row["coupled"] else " "
        print(
            f"{row['clip'][:43]:43s}{mark} {row['frames']:6d} | {m['r']:6.3f} {m['lag_ms']:+5.0f} {m['r_env']:6.3f}"
            f" {m['sil']:5.3f} | {b['r']:6.3f} {b['lag_ms']:+5.0f} {b['r_env']:6.3f} {b['sil']:5.3f} |"
            f" {row['sil_real']:8.3f}",
            flush=True,
        )
    for label, subset in (("mean, all clips", rows), ("mean, COUPLED (*)", [r for r in rows if r["coupled"]])):
        if not subset:
            continue
        model_r = float(np.nanmean([r["model"]["r"] for r in subset]))
        lag = float(np.nanmean([r["model"]["lag_ms"] for r in subset]))
        base = float(np.nanmean([r["loudness"]["r"] for r in subset]))
        sil = float(np.nanmean([r["model"]["sil"] for r in subset]))
        print(
            f"{label:44s} {len(subset):6d} | model r {model_r:.3f} (mean best lag {lag:+.0f} ms, silence"
            f" opening {sil:.3f}) | loudness baseline r {base:.3f} | ratio {model_r / max(base, 1e-6):.2f}x"
        )
    cost = float(np.mean([r["motion_ms_per_frame"] for r in rows]))
    print(
        f"motion model: {cost:.2f} ms per frame ({args.steps} steps, block {args.block}, 2 threads available);"
        f" lip_sync_offset_ms {args.offset_ms:+.0f}"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
