"""Lip-sync on real talking videos, measured by an independent face-landmark model.

For every dev clip whose audio is the speaker's own — the ``videos/av_*`` clips (the COUPLED ones
marked ``*``) and the ``videos/av2_*`` clips marked ``yes`` in SOURCES_more.tsv, their documented
audio offsets corrected as training corrects them (``sonic_rt.train.data.sync_shift``) — its first
frame is the portrait and its own audio the input. The product's own core
(``sonic_rt.animator.Animator``: phones, motion, lip-sync offset, retargeting, rendering) makes
every frame at 512 px, and MediaPipe measures the mouth opening (inner-lip gap / inter-ocular
distance) on the rendered frames; the same measure on the real video is the ground truth. Per clip:

- ``r0``: Pearson r between generated and real mouth opening at lag 0;
- ``r``: the same r at the best lag (the headline figure, as in issue 18), and ``lag``: that
  shift (ms, within +-200), + meaning ours comes late;
- ``r_env``: r between generated mouth opening and the speech loudness;
- ``sil``: mean generated opening over the silent frames (loudness 35 dB under the clip's peak),
  beside the real speaker's (``sil_real``).

The baseline, run in the same pass on the same portraits: mouth opening = speech loudness
(dB envelope mapped to the jaw). Means are printed per group: **held out** (never trained on:
the COUPLED av_* clips and the av2 clips in ``sonic_rt.train.data.HELD_OUT``) and **trained on**
(the other av2 ``yes`` clips: a training fit, not a figure), and for all av_* clips.
``--weights A,B,C`` runs several models (the ablations: ``python -m sonic_rt.train --inputs mel``
or ``phones``) over the same clips and prints their means side by side.

    python bench/bench_lipsync.py [--steps 4] [--block 8] [--offset-ms 0] [--clips av_01,av2_] [--weights DIR,DIR]
                                  [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import av
import numpy as np
import torch
from common import SHARED_DATA

from sonic_rt.animator import Animator
from sonic_rt.audio import FPS, SAMPLES_PER_FRAME
from sonic_rt.audio.decode import decode_audio
from sonic_rt.config import GeometryParams, MotionParams, VideoParams
from sonic_rt.errors import SonicError
from sonic_rt.face.analysis import FaceAnalyzer
from sonic_rt.measure import best_lag, mouth_opening, pearson
from sonic_rt.motion import vector
from sonic_rt.motion.stream import load_model
from sonic_rt.render.identity import build_identity, sha256_of
from sonic_rt.render.renderer import Renderer
from sonic_rt.render.retarget import to_portrait
from sonic_rt.train import data as train_data
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
    vec = vector.neutral(len(env_db))
    vec[:, vector.INDEX["jaw_open"]] = np.clip((env_db - (top - 40.0)) / 40.0, 0.0, 1.0) * 0.5
    return vec


def render_openings(renderer: Renderer, analyzer: FaceAnalyzer, absolute: np.ndarray, own_gap: float) -> np.ndarray:
    rel = to_portrait(absolute, own_gap)
    return openings([analyzer.landmarks_only(renderer.render(v)) for v in rel])


def scores(gen: np.ndarray, real: np.ndarray, env: np.ndarray, silent: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(gen) & np.isfinite(real)
    lag, r_best = best_lag(real[ok], gen[ok], MAX_LAG)
    g = np.nan_to_num(gen, nan=float(np.nanmedian(gen)))
    return {
        "r0": pearson(gen[ok], real[ok]),
        "r": r_best,
        "lag_ms": lag * 1000 / FPS,
        "r_env": pearson(g, env),
        "sil": float(np.nanmean(gen[silent])) if silent.any() else float("nan"),
    }


def dev_clips() -> list[tuple[Path, str]]:
    """(video, group): the av_* clips and the av2_* clips whose audio is the speaker's own."""
    videos = SHARED_DATA / "videos"
    coupled, own = coupled_clips(), train_data.own_speech(SHARED_DATA)
    out = []
    for path in sorted(videos.glob("av_*.mp4")):
        out.append((path, "held out" if path.stem in coupled else "av_ other"))
    for path in sorted(videos.glob("av2_*.mp4")):
        if path.stem in own:
            out.append((path, "held out" if path.stem in train_data.HELD_OUT else "trained on"))
    return out


def shifted_audio(path: Path, lags: dict[str, int]) -> tuple[np.ndarray, int]:
    """The clip's audio with its documented offset corrected (as for training), and the shift in frames."""
    audio = decode_audio(path)
    shift = train_data.sync_shift(path.stem, lags) if path.stem.startswith("av2_") else 0
    samples = shift * SAMPLES_PER_FRAME
    if samples < 0:
        audio = audio[-samples:]
    elif samples > 0:
        audio = np.concatenate([np.zeros(samples, np.float32), audio])
    return audio, shift


def run_clip(path: Path, models, params: MotionParams, video: VideoParams, analyzer: FaceAnalyzer,
             lags: dict[str, int]) -> dict:  # fmt: skip
    real = load_or_track(path, CACHE, lambda: analyzer)
    real_open = openings(list(real.landmarks))
    audio, shift = shifted_audio(path, lags)
    n = min(len(real_open), len(audio) // SAMPLES_PER_FRAME)
    real_open = real_open[:n]
    env = speech_envelope(audio, n)
    silent = env < env.max() - SILENCE_DB
    image = first_frame(path)
    ident = build_identity(image, analyzer.analyze(image), GeometryParams(), sha256_of(image), analyzer.segment_person)
    renderer = Renderer(ident)
    own_gap = ident.own_gap / ident.iod
    gens, costs = [], []
    for model, idle in models:
        animator = Animator(ident, model, idle, params, video)
        frames = [*animator.push(audio[: n * SAMPLES_PER_FRAME]), *animator.finish(n)]
        costs.append({k: animator.timings_ms[k] / n for k in ("features", "phones", "motion")})
        gens.append(scores(openings([analyzer.landmarks_only(f.image) for f in frames]), real_open, env, silent))
    base = scores(render_openings(renderer, analyzer, loudness_motion(env), own_gap), real_open, env, silent)
    real_sil = float(np.nanmean(real_open[silent])) if silent.any() else float("nan")
    return {"clip": path.stem, "frames": n, "shift_frames": shift, "models": gens, "loudness": base,
            "sil_real": real_sil, "ms_per_frame": costs}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=MotionParams.inference_steps)
    ap.add_argument("--block", type=int, default=MotionParams.block_frames)
    ap.add_argument("--guidance", type=float, default=MotionParams.guidance)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--offset-ms", type=float, default=VideoParams.lip_sync_offset_ms, help="lip_sync_offset_ms")
    ap.add_argument("--weights", default="", help="comma-separated model folders (default: the shipped model)")
    ap.add_argument("--clips", default="", help="comma-separated name prefixes (default: every dev clip)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)  # the model is small; OpenMP threads only contend with MediaPipe's
    clips = dev_clips()
    if not clips:
        raise SystemExit(f"no av_* videos under {SHARED_DATA}/videos (set SONIC_RT_SHARED_DATA)")
    if args.clips:
        clips = [(v, g) for v, g in clips if v.name.startswith(tuple(args.clips.split(",")))]
    folders = [Path(w) for w in args.weights.split(",") if w]
    models = [load_model(f) for f in folders] if folders else [load_model()]
    named = zip(folders, models, strict=True)
    names = [f"{f.name}({m.config.inputs})" for f, (m, _) in named] if folders else ["shipped"]
    params = MotionParams(inference_steps=args.steps, block_frames=args.block, guidance=args.guidance, seed=args.seed)
    lags = train_data.documented_lags(SHARED_DATA)
    analyzer = FaceAnalyzer()
    rows = []
    head = f"{'clip':44s} {'group':10s} {'frames':>6s} | {'r0':>6s} {'r':>6s} {'lag':>5s} {'sil':>5s} | {'base r':>6s}"
    print(head + f" {'lag':>5s} {'sil':>5s} | {'sil_real':>8s}   (first model: {names[0]})")
    for path, group in clips:
        try:
            row = run_clip(path, models, params, VideoParams(lip_sync_offset_ms=args.offset_ms), analyzer, lags)
        except SonicError as err:  # e.g. no usable face in the first frame: say so, go on
            print(f"{path.stem[:43]:43s}  skipped: {err.code}: {err}", flush=True)
            continue
        row["group"] = group
        rows.append(row)
        m, b = row["models"][0], row["loudness"]
        print(
            f"{row['clip'][:44]:44s} {group:10s} {row['frames']:6d} | {m['r0']:6.3f} {m['r']:6.3f} {m['lag_ms']:+5.0f}"
            f" {m['sil']:5.3f} | {b['r']:6.3f} {b['lag_ms']:+5.0f} {b['sil']:5.3f} | {row['sil_real']:8.3f}",
            flush=True,
        )
    groups = [(g, [r for r in rows if r["group"] == g]) for g in ("held out", "trained on")]
    groups.append(("all av_*", [r for r in rows if r["clip"].startswith("av_")]))
    print(
        f"\nmeans (r at the best lag within +-200 ms; r0 at lag 0; sil: mean opening in silence, real {'':s}"
        "speaker's beside it; ratio: r over the loudness baseline's r from the same run)"
    )
    for label, subset in groups:
        if not subset:
            continue
        base = float(np.nanmean([r["loudness"]["r"] for r in subset]))
        sil_real = float(np.nanmean([r["sil_real"] for r in subset]))
        print(
            f"  {label} ({len(subset)} clips): loudness baseline r {base:.3f}, real speaker's silence opening"
            f" {sil_real:.3f}"
        )
        for k, name in enumerate(names):
            m = [r["models"][k] for r in subset]
            r_best = float(np.nanmean([x["r"] for x in m]))
            r0 = float(np.nanmean([x["r0"] for x in m]))
            lag = float(np.nanmean([abs(x["lag_ms"]) for x in m]))
            sil = float(np.nanmean([x["sil"] for x in m]))
            print(
                f"    {name:28s} r {r_best:.3f}  r0 {r0:.3f}  mean |lag| {lag:3.0f} ms  silence opening {sil:.3f}"
                f" ({sil - sil_real:+.3f})  ratio {r_best / max(base, 1e-6):.2f}x"
            )
    for k, name in enumerate(names):
        cost = {s: float(np.mean([r["ms_per_frame"][k][s] for r in rows])) for s in ("features", "phones", "motion")}
        print(
            f"{name}: per frame (offline, one push per clip): mel {cost['features']:.2f} ms, phones"
            f" {cost['phones']:.2f} ms, motion {cost['motion']:.2f} ms ({args.steps} steps, block {args.block})"
        )
    print(f"lip_sync_offset_ms {args.offset_ms:+.0f}")
    if args.json:
        args.json.write_text(json.dumps({"models": names, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
