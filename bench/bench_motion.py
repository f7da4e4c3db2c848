"""Phonetic front end and motion model cost per generated frame on one core, steps and guidance included.

A real speech signal (espeak-ng, or a shared-data clip when present) is turned into log-mel and
phonetic rows — the phone recogniser streamed in 20 ms chunks, timed on its own — and streamed
through ``MotionStream`` for several (inference_steps, block_frames) settings; ``+ phones`` adds
the recogniser's cost per frame (the issue-18 goal: phonetic front end plus motion within 3 ms a
frame at the live default, 2 steps and 2-frame blocks). The baseline, measured in the same run on
the same core: rendering one 512 px frame of the sample portrait, i.e. the other per-frame cost of
a live session; the ratio says what share of it motion adds.

    python bench/bench_motion.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import SHARED_DATA, pin_one_core, summary, time_ms

from sonic_rt import audio
from sonic_rt.audio.decode import decode_audio
from sonic_rt.audio.features import log_mel
from sonic_rt.audio.phonetic import PhoneticTrack
from sonic_rt.config import GeometryParams, MotionParams
from sonic_rt.face.analysis import FaceAnalyzer
from sonic_rt.face.samples import load_sample
from sonic_rt.motion import vector
from sonic_rt.motion.stream import MotionStream, load_model
from sonic_rt.render.identity import enroll
from sonic_rt.render.renderer import Renderer

SETTINGS = ((2, 2), (4, 1), (4, 2), (4, 4), (4, 8), (8, 2), (8, 8))


def speech(seconds: float) -> tuple[str, np.ndarray]:
    clip = SHARED_DATA / "audio" / "en_01_hdtf_radio31_sadtalker.wav"
    if clip.is_file():
        return clip.name, decode_audio(clip)[: int(seconds * audio.SAMPLE_RATE)]
    from sonic_rt.audio.tts import synthesize
    from sonic_rt.train.sentences import ENGLISH

    parts = []
    for text in ENGLISH:
        parts.append(synthesize(text).audio)
        if sum(len(p) for p in parts) > seconds * audio.SAMPLE_RATE:
            break
    return "espeak-ng en-us", np.concatenate(parts)[: int(seconds * audio.SAMPLE_RATE)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    core = pin_one_core()
    torch.set_num_threads(1)
    model, idle = load_model()
    name, signal = speech(args.seconds)
    mel = log_mel(signal)
    frames = len(mel) // audio.MELS_PER_FRAME
    phone_runs = []
    for _ in range(3):
        track = PhoneticTrack(model.config.phone_delay_ms)
        t0 = time.perf_counter()
        rows = [track.push(signal[i : i + 320]) for i in range(0, len(signal), 320)]
        rows.append(track.finish())
        phone_runs.append((time.perf_counter() - t0) * 1e3 / frames)
    phones = np.concatenate(rows)
    phone_ms = float(np.median(phone_runs))

    analyzer = FaceAnalyzer()
    renderer = Renderer(enroll(load_sample("sample:astronaut"), GeometryParams(), analyzer))
    analyzer.close()
    vec = vector.make(jaw_open=0.3, head_yaw=4.0)
    render = float(np.median(time_ms(lambda: renderer.render(vec), repeat=100)))
    print(f"core {core}, {name}, {frames} frames; look-ahead {model.lookahead_ms} ms")
    print(f"baseline: render one 512 px frame  {summary(time_ms(lambda: renderer.render(vec), repeat=100))}")
    print(f"phone recogniser, streamed in 20 ms chunks: {phone_ms:.2f} ms per frame ({phone_ms / render:.2f}x render)")
    print(f"{'steps':>5s} {'block':>5s} {'latency':>8s} {'ms/frame':>9s} {'x render':>9s} {'+ phones':>9s}")
    for steps, block in SETTINGS:
        runs = []
        for _ in range(3):
            stream = MotionStream(model, idle, MotionParams(inference_steps=steps, block_frames=block))
            t0 = time.perf_counter()
            for i in range(0, len(mel), 2):  # 20 ms of audio at a time, as a live session feeds it
                stream.push(mel[i : i + 2], phones[i : i + 2])
            stream.finish()
            runs.append((time.perf_counter() - t0) * 1e3 / stream.frames_out)
        cost = float(np.median(runs))
        print(
            f"{steps:5d} {block:5d} {stream.latency_ms:6d}ms {cost:9.2f} {cost / render:8.2f}x {cost + phone_ms:8.2f}"
        )


if __name__ == "__main__":
    main()
