"""Where a live session's CPU goes, per frame: one ``streaming.Session`` (what a worker process runs
for it) driven as a live stream is — 20 ms chunks of real speech, a frame every two — on one thread.

It prints the CPU per frame without a profiler, then the same run under cProfile split into the
session's stages (cumulative time of each stage's entry point, scaled to the unprofiled total):
the phone recogniser, voice activity, log-mel features, the motion model, the rasteriser, the
remap, the mouth interior, the watermark, and what is left (the session's own Python). The
baseline in the same run is the model's share: every other stage is printed as a ratio to it.

    python bench/bench_session.py [--frames 500] [--audio ../shared/data/audio/en_04_...wav]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SHARED_DATA  # noqa: E402

# stage -> (file suffix, function) whose cumulative time is the stage's
STAGES = {
    "phone recogniser": ("recognizer.py", "push"),
    "voice activity": ("vad.py", "push"),
    "log-mel features": ("features.py", "frames_to_log_mel"),
    "motion model": ("motion_stream.py", "_generate_block"),
    "rasteriser": ("raster.py", "backward_map"),
    "remap": ("~", "<remap>"),
    "mouth interior": ("mouth.py", "paint_interior"),
    "watermark": ("marks.py", "apply"),
}


def drive(session, speech: np.ndarray, frames: int) -> None:
    chunk = 320  # 20 ms
    for k in range(frames * 2):
        start = (k * chunk) % (len(speech) - chunk)
        session.push_audio(speech[start : start + chunk])
        if k % 2:
            session.generate()
            session.next_frame()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--audio", type=Path, default=SHARED_DATA / "audio" / "en_04_vox2_681600002_pcavs.wav")
    args = ap.parse_args()

    import cv2
    import torch

    from server.proxy import build_session
    from sonic_rt.audio.decode import decode_audio
    from sonic_rt.config import GeometryParams, MotionParams, VideoParams
    from sonic_rt.face.analysis import FaceAnalyzer
    from sonic_rt.face.samples import load_sample
    from sonic_rt.motion.stream import load_model
    from sonic_rt.provenance.marks import Marks
    from sonic_rt.render.identity import enroll

    torch.set_num_threads(1)  # as in a worker process
    cv2.setNumThreads(1)
    if args.audio.is_file():
        speech = decode_audio(args.audio)
    else:
        from sonic_rt.audio import tts

        speech = tts.synthesize("The quick brown fox jumps over the lazy dog. " * 4).audio
    identity = enroll(load_sample("sample:astronaut"), GeometryParams(), FaceAnalyzer())
    model, idle = load_model()

    def session():
        return build_session(identity, model, idle, MotionParams(), VideoParams(), Marks(0x5EED))

    drive(session(), speech, 50)  # warm: traces, first calls
    s = session()
    t, c = time.perf_counter(), time.process_time()
    drive(s, speech, args.frames)
    cpu_ms = (time.process_time() - c) / args.frames * 1e3
    wall_ms = (time.perf_counter() - t) / args.frames * 1e3

    profile = cProfile.Profile()
    s = session()
    profile.enable()
    drive(s, speech, args.frames)
    profile.disable()
    stats = pstats.Stats(profile).stats
    total = sum(tt for _, _, tt, _, _ in stats.values())
    scale = cpu_ms / (total / args.frames * 1e3)  # the profiler's overhead taken out, in proportion
    shares = {}
    for stage, (suffix, name) in STAGES.items():
        cum = sum(ct for (file, _, func), (_, _, _, ct, _) in stats.items() if func == name and file.endswith(suffix))
        shares[stage] = cum / args.frames * 1e3 * scale
    shares["the session's own Python (the rest)"] = cpu_ms - sum(shares.values())

    print(f"one live session, {args.frames} frames at 512 px, one thread: CPU {cpu_ms:.2f} ms per frame "
          f"(wall {wall_ms:.2f} ms) = {cpu_ms * 25 / 10:.0f} % of a core at 25 fps")  # fmt: skip
    base = shares["motion model"]
    print(f"\n{'stage':38} {'ms/frame':>9} {'share':>7} {'x model':>8}")
    for stage, ms in shares.items():
        print(f"{stage:38} {ms:9.2f} {ms / cpu_ms:7.1%} {ms / base:8.2f}")


if __name__ == "__main__":
    main()
