"""Throughput of live sessions' generation: in one process, and on 1 and 2 Ray Serve replicas.

Each configuration runs N sessions of the built-in portrait at 512 px, each driven by its own
thread as fast as it goes — push one frame's worth of real speech (40 ms), take the next frame
(motion, render, watermark), as a live session does 25 times a second — for ``--seconds``, and
reports the frames per second of all sessions together. Real-time sessions = fps / 25: how many
live sessions that configuration holds on this machine. Also printed: this process's CPU per
frame — all the work in one process; on Ray, the front end's share (a Serve call per frame), what
a front end spends per frame when the replicas are on other machines.

- ``in-process``: the single-process server's ``streaming.Session`` on threads (the baseline,
  measured in the same run; its 1-session figure is the 1.00x).
- ``ray xR``: ``sonic-rt serve --ray``'s generator deployment with R replicas on a local cluster,
  the sessions opened and driven through ``server.cluster.remote.RemoteSession`` exactly as the
  front end drives them (each frame is a Serve call; the calling process plays the front end);
  ``batched``: the replicas' sessions' model calls batched (``sonic_rt.motion.batch.BatchRunner``; the
  default on a GPU), else one session at a time (the default on a CPU).

    python bench/bench_ray.py [--sessions 1,2,4,6] [--replicas 1,2] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_stream import speech_audio  # noqa: E402

FRAME = 640  # 16 kHz samples per 25 fps frame


def drive(sessions: list, speech: np.ndarray, seconds: float) -> tuple[float, int, float]:
    """Each session on its own thread: push a frame's audio, take a frame, until ``seconds`` pass.
    Returns (frames per second of all sessions together, frames, this process's CPU ms per frame)."""
    counts = [0] * len(sessions)
    stop = time.perf_counter() + seconds
    errors: list[BaseException] = []

    def run(i: int, session) -> None:
        try:
            pos = (i * 7919 * FRAME) % (len(speech) - FRAME)
            while time.perf_counter() < stop:
                session.push_audio(speech[pos : pos + FRAME])
                session.next_frame()
                counts[i] += 1
                pos = (pos + FRAME) % (len(speech) - FRAME)
        except BaseException as err:  # reported after the run, not lost in a thread
            errors.append(err)

    t0, cpu0 = time.perf_counter(), _cpu()
    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    frames = sum(counts)
    return frames / (time.perf_counter() - t0), frames, (_cpu() - cpu0) * 1e3 / max(frames, 1)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def local_sessions(n: int, identity, model, idle) -> list:
    from sonic_rt.animator import Animator
    from sonic_rt.provenance.marks import Marks
    from streaming.session import Session
    from streaming.vad import VoiceActivity

    return [Session(Animator(identity, model, idle, render=False, marks=Marks(i)), VoiceActivity()) for i in range(n)]


def remote_sessions(n: int, handle, identity) -> list:
    from server.cluster.remote import RemoteSession
    from sonic_rt.config import MotionParams, VideoParams
    from sonic_rt.provenance.marks import Marks

    return [RemoteSession(handle, identity, MotionParams(), VideoParams(), Marks(i)) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1,2,4,6", help="session counts, comma-separated")
    parser.add_argument("--replicas", default="1,2", help="replica counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured per configuration")
    parser.add_argument("--batching", choices=("both", "off", "on"), default="both",
                        help="replicas' model calls one session at a time, batched across sessions, or both")
    parser.add_argument("--warmup", type=float, default=2.0, help="driven first, not measured")
    args = parser.parse_args()
    counts = [int(x) for x in args.sessions.split(",")]
    replica_counts = [int(x) for x in args.replicas.split(",")]

    import cv2
    import torch

    from server.cluster import launch
    from sonic_rt.config import GeometryParams
    from sonic_rt.face.samples import load_sample
    from sonic_rt.motion.stream import load_model
    from sonic_rt.offline import load_portrait

    torch.set_num_threads(1)  # as the server: sessions are the parallelism
    cv2.setNumThreads(1)
    sys.setswitchinterval(0.005)
    identity = load_portrait(load_sample("sample:astronaut"), GeometryParams())
    model, idle = load_model()
    speech = (speech_audio(60.0) * 32767).astype(np.int16)
    rows: list[tuple[str, int, float]] = []

    def measure(name: str, make) -> None:
        for n in counts:
            sessions = make(n)
            drive(sessions, speech, args.warmup)
            fps, frames, cpu_ms = drive(sessions, speech, args.seconds)
            for s in sessions:
                getattr(s, "close", lambda: None)()
            rows.append((name, n, fps))
            print(f"  {name:<20} {n:>2} sessions: {fps:6.1f} fps ({frames} frames; this process's CPU "
                  f"{cpu_ms:.1f} ms per frame)", flush=True)  # fmt: skip

    print(f"{identity.out_size} px frames, {args.seconds:g} s per point, {len(speech) / 16000:.0f} s of real speech")
    measure("in-process", lambda n: local_sessions(n, identity, model, idle))
    modes = {"both": (False, True), "off": (False,), "on": (True,)}[args.batching]
    for r in replica_counts:
        for batched in modes:
            settings = launch.RaySettings(min_replicas=r, max_replicas=r, replica_cpus=0.5, cpus=2, batching=batched)
            handle = launch.start(settings)
            while launch.running_replicas() < r:
                time.sleep(0.5)
            measure(f"ray x{r}{' batched' if batched else ''}", lambda n, h=handle: remote_sessions(n, h, identity))
            launch.stop()

    base = rows[0][2]
    print("\nThroughput, frames per second of all sessions together (baseline: in-process, 1 session = 1.00x)")
    print(f"{'configuration':<22}" + "".join(f"{n:>10} sess" for n in counts))
    for name in dict.fromkeys(r[0] for r in rows):
        figures = [fps for row_name, _, fps in rows if row_name == name]
        print(f"{name:<22}" + "".join(f"{f:>9.1f} fps" for f in figures))
        print(f"{'':<22}" + "".join(f"{f / base:>13.2f}x" for f in figures))
        print(f"{'  real-time':<22}" + "".join(f"{f / 25:>14.1f}" for f in figures))


if __name__ == "__main__":
    main()
