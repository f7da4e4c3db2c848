"""Offline generation (``sonic_rt.offline.generate``): wall time of a 10 s clip and peak memory vs length.

Two goals are checked.

1. Speed: a 10 s clip at 512 px in <= 2 s wall (>= 5x real time) on the 2-core CPU, time split by
   stage. ``generate("sample:astronaut", AUDIO, out.mp4, min_resolution=512)`` is run once cold (the
   first run of the process pays one-off costs: the mediapipe model, the TorchScript trace, numba's
   cache), then ``--runs`` times warm; the median warm run is reported with its per-stage split
   (``Result.timings_ms``; encoding runs on its own thread alongside the rest, so the stages do not
   add up to the wall). The cold process, Python imports included, is timed once by running
   ``sonic-rt generate ... --quiet`` in a subprocess.
   Baseline, measured in the same run and interleaved with the warm runs (the machine is shared and
   noisy): "encode only", i.e. writing as many frames of the portrait's static plate, plus the
   audio, with ``Mp4Writer`` (crf 20, preset veryfast) on one thread: what a video of the portrait
   costs when nothing is animated or rendered. Figures are given as x baseline and as wall / audio
   length.
2. Memory: peak RSS of a fresh process generating 10 s vs 60 s of audio (the 10 s clip looped, as
   WAV), goal flat. Each child records its RSS after imports + ``prepare`` (audio probe, enrolment)
   + motion model load ("ready", the baseline), resets its high-water mark and generates; growth is
   the high-water mark during ``generate`` minus the ready RSS. Peaks are ``VmHWM`` from
   /proc/self/status, not ``ru_maxrss``: Linux carries ``ru_maxrss`` over fork + exec, so a child of
   this (700 MB) process would report the parent's peak.
   ``--long-minutes M`` adds an M-minute run.

Threads are left free (the encoder has its own thread; the goal is for the 2-core machine) but
torch runs single-threaded, as the command line sets it.

    python bench/bench_generate.py [--runs 3] [--long-minutes 0] [--json figures.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import torch
from common import REPO, SHARED_DATA

from sonic_rt import audio
from sonic_rt.animator import frames_for_samples
from sonic_rt.audio.decode import decode_audio
from sonic_rt.config import GeometryParams
from sonic_rt.media.mp4 import Mp4Writer
from sonic_rt.offline import CHUNK_SAMPLES, generate, load_portrait

PORTRAIT = "sample:astronaut"
CLIP = SHARED_DATA / "audio" / "en_08_sonic_talk_female_english_10s.mp3"
RESOLUTION = 512
GOAL_WALL_S = 2.0
GOAL_RTF = 5.0
GOAL_FLAT_MB = 5.0  # "flat": the longer run's peak within a few MB of the 10 s run's
MAIN_STAGES = ("probe_audio", "enroll", "load_model", "decode", "features", "motion", "render")


def mib(kib: float) -> float:
    return kib / 1024


def proc_status() -> dict[str, int]:
    """Current (VmRSS) and high-water (VmHWM) resident set, KiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {"rss_kib": int(fields["VmRSS"].split()[0]), "hwm_kib": int(fields["VmHWM"].split()[0])}


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def write_wav(path: Path, samples: np.ndarray) -> Path:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(audio.SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    return path


def speech_clip(tmp: Path) -> tuple[str, Path]:
    """The shared 10 s clip, else 10 s of espeak-ng speech written as WAV."""
    if CLIP.is_file():
        return CLIP.name, CLIP
    print(f"note: {CLIP} not found; synthesizing 10 s of speech with espeak-ng", file=sys.stderr)
    from sonic_rt.audio.tts import synthesize
    from sonic_rt.train.sentences import ENGLISH

    need = 10 * audio.SAMPLE_RATE
    parts: list[np.ndarray] = []
    while sum(len(p) for p in parts) < need:
        parts.append(synthesize(ENGLISH[len(parts) % len(ENGLISH)]).audio)
    return "espeak-ng en-us 10 s", write_wav(tmp / "speech_10s.wav", np.concatenate(parts)[:need])


def looped(samples: np.ndarray, seconds: float) -> np.ndarray:
    n = int(round(seconds * audio.SAMPLE_RATE))
    return np.tile(samples, -(-n // len(samples)))[:n]


# --- goal 1: speed ---------------------------------------------------------------------------


def run_generate(clip: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    result = generate(PORTRAIT, clip, out, min_resolution=RESOLUTION)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "result_wall_s": result.wall_s, "frames": result.frames, "seconds": result.seconds,
            "realtime_factor": result.realtime_factor, "timings_ms": dict(result.timings_ms)}  # fmt: skip


def encode_only(plate: np.ndarray, samples: np.ndarray, frames: int, out: Path) -> float:
    """Seconds to write ``frames`` copies of ``plate`` and the audio, interleaved as generate does."""
    t0 = time.perf_counter()
    with Mp4Writer(out, plate.shape[0], fps=25, crf=20, preset="veryfast") as writer:
        for start in range(0, len(samples), CHUNK_SAMPLES):
            piece = samples[start : start + CHUNK_SAMPLES]
            writer.write_audio(piece)
            due = min(frames, frames_for_samples(start + len(piece), 25))
            while writer.frames < due:
                writer.write_frame(plate)
        while writer.frames < frames:
            writer.write_frame(plate)
    return time.perf_counter() - t0


def cold_cli(clip: Path, out: Path) -> dict:
    """A fresh ``sonic-rt generate`` process: wall including interpreter start and imports."""
    cli = Path(sys.executable).with_name("sonic-rt")
    cmd = [str(cli)] if cli.is_file() else [sys.executable, "-m", "sonic_rt"]
    cmd += ["generate", PORTRAIT, str(clip), "-o", str(out), "--quiet", "--min-resolution", str(RESOLUTION)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    inner = re.search(r"in ([\d.]+) s \(", proc.stdout)
    return {"command": " ".join(cmd), "wall_s": wall, "generate_s": float(inner.group(1)) if inner else None,
            "stdout": proc.stdout.strip()}  # fmt: skip


# --- goal 2: memory (each length in a fresh process) ------------------------------------------


def rss_child(clip: str, out: str) -> None:
    """In a fresh process: RSS after imports, after prepare + model load, and the peak during generate."""
    torch.set_num_threads(1)
    from sonic_rt import offline

    imports = proc_status()
    offline.prepare(PORTRAIT, clip, offline.JobParams.from_flat(min_resolution=RESOLUTION))
    offline._motion_model()  # what Job.chunks loads first; cached for the run below
    ready = proc_status()
    reset = reset_peak()
    result = generate(PORTRAIT, clip, out, min_resolution=RESOLUTION)
    done = proc_status()
    print(
        json.dumps(
            {
                "imports": imports,
                "ready": ready,
                "done": done,
                "hwm_reset": reset,
                "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "seconds": result.seconds,
                "wall_s": result.wall_s,
                "frames": result.frames,
            }
        )
    )


def measure_rss(clip: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--rss-child", str(clip), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        raise SystemExit(f"memory child failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["peak_kib"] = max(r["ready"]["hwm_kib"], r["done"]["hwm_kib"])  # the whole process
    base = r["ready"]["rss_kib"] if r["hwm_reset"] else r["ready"]["hwm_kib"]
    r["generate_peak_kib"] = r["done"]["hwm_kib"] if r["hwm_reset"] else r["peak_kib"]
    r["growth_kib"] = r["generate_peak_kib"] - base
    return r


# --- report ----------------------------------------------------------------------------------


def speed_report(cold: dict, warm: list[dict], baselines: list[float], cli: dict, audio_s: float) -> dict:
    ratios = [w["wall_s"] / b for w, b in zip(warm, baselines, strict=True)]
    med = sorted(warm, key=lambda w: w["wall_s"])[len(warm) // 2]
    base = statistics.median(baselines)
    frames = med["frames"]
    print(f"\n== goal 1: {audio_s:.2f} s clip at {RESOLUTION} px ({frames} frames), wall on this CPU ==")
    print(f"baseline, encode only ({frames} plate frames + audio, Mp4Writer crf 20 veryfast, 1 thread): "
          f"median {base:.3f} s  [{', '.join(f'{b:.3f}' for b in baselines)}]")  # fmt: skip
    print(f"{'run':<26s} {'wall s':>8s} {'x base':>7s} {'wall/audio':>10s} {'x real time':>11s}")
    rows = [("cold, in process (1st)", cold["wall_s"], cold["wall_s"] / base)]
    rows += [(f"warm run {i + 1}", w["wall_s"], r) for i, (w, r) in enumerate(zip(warm, ratios, strict=True))]
    rows += [(f"warm median of {len(warm)}", med["wall_s"], statistics.median(ratios))]
    rows += [("cold process (CLI, imports)", cli["wall_s"], cli["wall_s"] / base)]
    for name, wall, ratio in rows:
        print(f"{name:<26s} {wall:8.3f} {ratio:6.2f}x {wall / audio_s:10.3f} {audio_s / wall:10.2f}x")
    if cli["generate_s"] is not None:
        startup = cli["wall_s"] - cli["generate_s"]
        print(f"  cold process = {startup:.2f} s interpreter start + imports + {cli['generate_s']:.2f} s "
              "in generate (as the CLI reports it)")  # fmt: skip
    for line in cli["stdout"].splitlines():
        print(f"  | {line}")

    print(f"\nstage split, median warm run vs cold run (ms; per frame over {frames} frames):")
    print(f"{'stage':<14s} {'warm ms':>9s} {'% wall':>7s} {'ms/frame':>9s} {'x base':>7s} {'cold ms':>9s}")
    split = {}
    for stage in MAIN_STAGES:
        ms, cold_ms = med["timings_ms"].get(stage, 0.0), cold["timings_ms"].get(stage, 0.0)
        split[stage] = ms
        print(f"{stage:<14s} {ms:9.1f} {100 * ms / (1e3 * med['wall_s']):6.1f}% {ms / frames:9.2f} "
              f"{ms / (1e3 * base):6.2f}x {cold_ms:9.1f}")  # fmt: skip
    main_ms = sum(split.values())
    other = 1e3 * med["wall_s"] - main_ms
    cold_other = 1e3 * cold["wall_s"] - sum(cold["timings_ms"].get(s, 0.0) for s in MAIN_STAGES)
    print(
        f"{'other':<14s} {other:9.1f} {100 * other / (1e3 * med['wall_s']):6.1f}% {other / frames:9.2f} "
        f"{other / (1e3 * base):6.2f}x {cold_other:9.1f}   (retarget, frame hand-off, waits on the encoder queue)"
    )
    enc, cold_enc = med["timings_ms"].get("encode", 0.0), cold["timings_ms"].get("encode", 0.0)
    print(
        f"{'encode (||)':<14s} {enc:9.1f} {100 * enc / (1e3 * med['wall_s']):6.1f}% {enc / frames:9.2f} "
        f"{enc / (1e3 * base):6.2f}x {cold_enc:9.1f}   (own thread, runs alongside the stages above)"
    )

    wall, rtf = med["wall_s"], med["realtime_factor"]
    met = wall <= GOAL_WALL_S and rtf >= GOAL_RTF
    print(
        f"\ngoal: <= {GOAL_WALL_S:.1f} s wall (>= {GOAL_RTF:.0f}x real time) for the 10 s clip, warm: "
        f"{'MET' if met else 'NOT MET'}: {wall:.2f} s, {rtf:.2f}x real time (Result.realtime_factor); "
        f"the goal is {GOAL_WALL_S / base:.2f}x baseline, the run {statistics.median(ratios):.2f}x"
    )
    cold_met = cli["wall_s"] <= GOAL_WALL_S
    print(f"      cold process, imports included: {'MET' if cold_met else 'NOT MET'}: {cli['wall_s']:.2f} s")
    return {"audio_seconds": audio_s, "frames": frames, "baseline_encode_only_s": baselines,
            "baseline_median_s": base, "cold_in_process": cold, "warm_runs": warm, "warm_median": med,
            "warm_ratio_to_baseline": ratios, "warm_median_ratio": statistics.median(ratios),
            "cold_process": cli, "goal_wall_s": GOAL_WALL_S, "goal_rtf": GOAL_RTF, "goal_met_warm": met,
            "goal_met_cold_process": cold_met}  # fmt: skip


def memory_report(runs: dict[str, dict]) -> dict:
    print("\n== goal 2: peak RSS by audio length (fresh process each; MiB) ==")
    print(
        f"{'audio':>8s} {'frames':>7s} {'wall s':>7s} {'imports':>8s} {'ready':>8s} {'gen peak':>8s} "
        f"{'growth':>8s} {'proc peak':>9s} {'end RSS':>8s}"
    )
    for label, r in runs.items():
        print(f"{label:>8s} {r['frames']:7d} {r['wall_s']:7.1f} {mib(r['imports']['rss_kib']):8.1f} "
              f"{mib(r['ready']['rss_kib']):8.1f} {mib(r['generate_peak_kib']):8.1f} {mib(r['growth_kib']):8.1f} "
              f"{mib(r['peak_kib']):9.1f} {mib(r['done']['rss_kib']):8.1f}")  # fmt: skip
    short = runs["10 s"]
    print(
        "  ready = RSS after imports + prepare (probe, enrolment) + model load (the baseline); gen peak = VmHWM during"
        f" generate{'' if short['hwm_reset'] else ' (could not reset: whole process)'}; growth = gen peak - ready;"
        f" proc peak = the process's VmHWM (enrolment's peak {mib(short['ready']['hwm_kib']):.1f} MiB included)"
    )
    verdicts = {}
    for label, r in runs.items():
        if label == "10 s":
            continue
        dpeak = mib(r["peak_kib"] - short["peak_kib"])
        dgen = mib(r["generate_peak_kib"] - short["generate_peak_kib"])
        peak_ratio = r["peak_kib"] / short["peak_kib"]
        gen_ratio = r["generate_peak_kib"] / short["generate_peak_kib"]
        growth_ratio = r["growth_kib"] / short["growth_kib"] if short["growth_kib"] > 0 else float("nan")
        flat = max(dpeak, dgen) <= GOAL_FLAT_MB
        verdicts[label] = {
            "peak_ratio": peak_ratio,
            "peak_delta_mib": dpeak,
            "generate_peak_ratio": gen_ratio,
            "generate_peak_delta_mib": dgen,
            "growth_ratio": growth_ratio,
            "growth_delta_mib": mib(r["growth_kib"] - short["growth_kib"]),
            "flat": flat,
        }
        print(f"{label} / 10 s: process peak {peak_ratio:.3f}x ({dpeak:+.1f} MiB), generate peak {gen_ratio:.3f}x "
              f"({dgen:+.1f} MiB), growth {growth_ratio:.2f}x ({verdicts[label]['growth_delta_mib']:+.1f} MiB); "
              f"goal flat (within {GOAL_FLAT_MB:.0f} MiB): {'MET' if flat else 'NOT MET'}")  # fmt: skip
    return {"runs": runs, "vs_10s": verdicts, "goal_flat_mib": GOAL_FLAT_MB}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="warm timed runs (after one cold run)")
    ap.add_argument("--long-minutes", type=float, default=0.0, help="also measure memory on M minutes (0: off)")
    ap.add_argument("--json", type=Path, help="write every figure to this file")
    ap.add_argument("--rss-child", nargs=2, metavar=("AUDIO", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child)
        return
    torch.set_num_threads(1)  # a small model: more threads only spin-wait (10-100x slower here)

    with tempfile.TemporaryDirectory(prefix="bench_generate.") as tmp_name:
        tmp = Path(tmp_name)
        name, clip = speech_clip(tmp)
        samples = decode_audio(clip)
        audio_s = len(samples) / audio.SAMPLE_RATE
        load = os.getloadavg()
        print(f"{PORTRAIT} at {RESOLUTION} px, {name} ({audio_s:.2f} s); torch threads 1, "
              f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip

        cold = run_generate(clip, tmp / "cold.mp4")
        plate = load_portrait(PORTRAIT, GeometryParams(min_resolution=RESOLUTION)).plate
        encode_only(plate, samples, cold["frames"], tmp / "base.mp4")  # warm-up
        warm, baselines = [], []
        for i in range(args.runs):
            baselines.append(encode_only(plate, samples, cold["frames"], tmp / "base.mp4"))
            warm.append(run_generate(clip, tmp / f"warm{i}.mp4"))
        cli = cold_cli(clip, tmp / "cli.mp4")
        figures = {"portrait": PORTRAIT, "audio": name, "resolution": RESOLUTION, "load_before": load}
        figures["speed"] = speed_report(cold, warm, baselines, cli, audio_s)

        lengths = {"10 s": 10.0, "60 s": 60.0}
        if args.long_minutes > 0:
            lengths[f"{args.long_minutes:g} min"] = 60.0 * args.long_minutes
        mem = {}
        for label, seconds in lengths.items():
            wav = write_wav(tmp / f"speech_{seconds:g}s.wav", looped(samples, seconds))
            mem[label] = measure_rss(wav, tmp / "mem.mp4")
        figures["memory"] = memory_report(mem)
        figures["load_after"] = os.getloadavg()
        print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in figures['load_after'])} "
              f"(over {os.cpu_count()} CPUs; above ~1.5 another job was competing)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
