"""Frames per second of N concurrent sessions, their model calls batched across sessions or not.

Each session is a thread driving its own ``Animator`` of the sample portrait as fast as it can
with real speech (a shared-data clip, or espeak-ng) in 20 ms chunks, at the live defaults
(2-frame blocks). The baseline, measured in the same run with the same sessions: a
``DirectRunner``, each session's model calls made one at a time as it needs them; against it a
``BatchRunner`` that merges the calls sessions make at about the same time (``sonic_rt.motion.batch``).
Printed: all sessions' frames per second together, the ratio (batching gain), the mean number
of calls merged into one, and each stage's ms per frame (``Animator.timings_ms``: wall time on
the session's thread, so waiting for a batch or for the GIL counts). With ``render`` off the
sessions make motion only, so the model side's gain shows on its own.

torch runs single-threaded (``torch.set_num_threads(1)``), as ``sonic-rt serve`` does: the
sessions are the parallelism, and intra-op threads on calls this small only spin and contend.

    python bench/bench_batch.py [--sessions 1 2 4 8] [--seconds 8] [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_motion import speech  # noqa: E402

from server.cli import SWITCH_INTERVAL_S  # noqa: E402
from sonic_rt import audio  # noqa: E402
from sonic_rt.animator import STAGES, Animator  # noqa: E402
from sonic_rt.config import GeometryParams, MotionParams  # noqa: E402
from sonic_rt.face.samples import load_sample  # noqa: E402
from sonic_rt.motion.batch import BatchRunner, Runner, default_device, make_runner  # noqa: E402
from sonic_rt.motion.stream import load_model  # noqa: E402
from sonic_rt.offline import load_portrait  # noqa: E402

CHUNK = audio.SAMPLE_RATE * 20 // 1000  # 20 ms, as a live client sends it
WARMUP_S = 1.0  # untimed run of every setting first: traces of each batch shape, caches


def run_sessions(identity, model, idle, runner: Runner, clips: list[np.ndarray], render: bool) -> dict:
    """Drive one ``Animator`` per clip, each on its own thread, all at once; frames/s and ms/frame."""
    animators = [Animator(identity, model, idle, MotionParams(seed=i), render=render, runner=runner)
                 for i in range(len(clips))]  # fmt: skip
    start = threading.Barrier(len(clips) + 1)
    frames = [0] * len(clips)

    def session(i: int) -> None:
        anim, clip = animators[i], clips[i]
        start.wait()
        for at in range(0, len(clip), CHUNK):
            frames[i] += len(anim.push(clip[at : at + CHUNK]))
        frames[i] += len(anim.finish())

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(clips))]
    for t in threads:
        t.start()
    before = counts(runner)
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    total = sum(frames)
    batches, items = (after - b for after, b in zip(counts(runner), before, strict=True))
    return {
        "fps": total / wall,
        "batch": items / batches if batches else 1.0,
        "ms": {s: sum(a.timings_ms[s] for a in animators) / total for s in STAGES},
    }


def counts(runner: Runner) -> tuple[int, int]:
    """Model calls and the requests they served so far (a ``DirectRunner``: one each, not counted)."""
    return (runner.batches, runner.items) if isinstance(runner, BatchRunner) else (0, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--seconds", type=float, default=8.0, help="audio per session")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    ap.add_argument("--render", choices=["on", "off", "both"], default="both")
    ap.add_argument("--repeat", type=int, default=3, help="alternated runs of each; the fastest counts")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as `sonic-rt serve` runs its sessions' threads
    import cv2

    cv2.setNumThreads(1)
    device = torch.device(args.device) if args.device else default_device()
    model, idle = load_model()
    identity = load_portrait(load_sample("sample:astronaut"), GeometryParams())
    name, signal = speech(60.0)

    def clips(n: int, seconds: float) -> list[np.ndarray]:  # each session its own stretch of the speech
        length = int(seconds * audio.SAMPLE_RATE)
        reps = -(-(length + n * audio.SAMPLE_RATE) // len(signal)) + 1
        looped = np.tile(signal, reps)
        return [looped[i * 37 * audio.SAMPLES_PER_FRAME :][:length] for i in range(n)]

    runners = {"direct": make_runner(model, False, device), "batched": make_runner(model, True, device)}
    print(f"{os.cpu_count()} cores, torch threads 1, device {device}; {name}, {args.seconds:g} s of audio per "
          f"session in 20 ms chunks, block {MotionParams().block_frames} frames, "
          f"{MotionParams().inference_steps} steps, guidance {MotionParams().guidance:g}; "
          f"the fastest of {args.repeat} alternated runs each")  # fmt: skip
    print("baseline: direct (each session's model calls one at a time); gain = batched fps / direct fps")
    print("ms/frame: features / motion / render, wall time on each session's thread")
    header = f"{'render':>6s} {'sessions':>8s} {'direct fps':>10s} {'batched fps':>11s} {'gain':>6s} {'batch':>6s}"
    print(f"{header}  {'direct ms/frame':>20s}  {'batched ms/frame':>20s}")
    renders = {"on": [True], "off": [False], "both": [False, True]}[args.render]
    try:
        for render in renders:
            for n in args.sessions:
                for runner in runners.values():
                    run_sessions(identity, model, idle, runner, clips(n, WARMUP_S), render)
                runs = {kind: [] for kind in runners}
                for _ in range(args.repeat):
                    for kind, runner in runners.items():
                        runs[kind].append(run_sessions(identity, model, idle, runner, clips(n, args.seconds), render))
                out = {kind: max(r, key=lambda x: x["fps"]) for kind, r in runs.items()}
                d, b = out["direct"], out["batched"]
                ms = {k: " / ".join(f"{r['ms'][s]:5.2f}" for s in STAGES) for k, r in out.items()}
                print(f"{'on' if render else 'off':>6s} {n:8d} {d['fps']:10.1f} {b['fps']:11.1f} "
                      f"{b['fps'] / d['fps']:5.2f}x {b['batch']:6.2f}  {ms['direct']:>20s}  {ms['batched']:>20s}",
                      flush=True)  # fmt: skip
    finally:
        for runner in runners.values():
            runner.close()


if __name__ == "__main__":
    main()
