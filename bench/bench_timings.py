"""What a client's timings save: the recogniser's look-ahead (latency) and its CPU, per frame.

The same speech (espeak-ng sentences) is fed to the product's ``Animator`` in 20 ms chunks, as a
live session feeds it, three ways: the phones recognised from the audio (the baseline, what any
audio gets), and the speech's phonemes sent as a client's timings in two vocabularies, Azure
viseme IDs and Amazon Polly visemes (converted from espeak's exact phonemes, then read by
``sonic_rt.audio.timings.parse`` like a message from the client; ``--formats``). For each frame:
the audio that had to arrive after the frame's own end before the frame came out (its
algorithmic latency), and the CPU the phonetic track took.

The viseme checks with timings against recognised (/p b m/ closed, /u w/ rounded, on rendered
frames) are ``bench_visemes.py --modes given,azure,polly,recognised``.

    python bench/bench_timings.py [--sentences N] [--formats azure,polly]
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
from common import portrait

from sonic_rt import audio
from sonic_rt.animator import Animator
from sonic_rt.audio import phonetic, timings, tts
from sonic_rt.config import GeometryParams, MotionParams, VideoParams
from sonic_rt.face.analysis import FaceAnalyzer
from sonic_rt.motion.stream import load_model
from sonic_rt.render.identity import enroll

SENTENCES = (
    "Peter picked a pepper.",
    "Bob and Mum moved the blue boat.",
    "We went to buy five fine violins.",
    "Who would move the wooden box for me?",
    "I had a hard day at the castle, and I sat down.",
    "The quick brown fox jumps over the lazy dog.",
)
CHUNK = audio.SAMPLE_RATE // 50  # 20 ms

# the class each espeak phoneme stands for -> the client vocabularies' symbol for it (how a TTS
# that speaks in that vocabulary would have marked the same sound)
POLLY = {
    "rest": "sil", "p": "p", "β": "p", "f": "f", "θ": "T", "t": "t", "s": "s", "l": "l", "ʃ": "S", "ʂ": "S",
    "ɕ": "S", "ɹ": "r", "j": "i", "w": "u", "k": "k", "h": "k", "i": "i", "ɪ": "i", "e": "e", "ɛ": "E",
    "æ": "a", "a": "a", "ɑ": "a", "ʌ": "E", "ə": "@", "ɜ": "E", "ɚ": "@", "ɒ": "a", "ɔ": "O", "o": "o",
    "ʊ": "u", "u": "u", "y": "u", "ɤ": "@", "ɿ": "i", "ʅ": "i",
}  # fmt: skip
AZURE = {
    "rest": 0, "æ": 1, "ə": 1, "ʌ": 1, "ɤ": 1, "a": 2, "ɑ": 2, "ɒ": 2, "ɔ": 3, "e": 4, "ɛ": 4, "ʊ": 4,
    "ɚ": 5, "ɜ": 5, "i": 6, "ɪ": 6, "j": 6, "ɿ": 6, "ʅ": 6, "w": 7, "u": 7, "y": 7, "o": 8, "h": 12, "ɹ": 13,
    "l": 14, "s": 15, "ʃ": 16, "ʂ": 16, "ɕ": 16, "θ": 17, "f": 18, "t": 19, "k": 20, "p": 21, "β": 21,
}  # fmt: skip


def client_marks(speech: tts.Speech, fmt: str) -> tuple[timings.Mark, ...]:
    """``speech``'s phonemes as a client in vocabulary ``fmt`` would send them, read back."""
    events = []
    for p in map(phonetic.as_mark, speech.phonemes):
        step = (p.end - p.start) / len(p.classes)
        for i, c in enumerate(p.classes):
            start_ms = round((p.start + i * step) * 1000)
            if fmt == "polly":
                events.append({"time": start_ms, "type": "viseme", "value": POLLY[c]})
            else:
                events.append({"audio_offset": start_ms * 10_000, "viseme_id": AZURE[c]})
    return timings.parse(fmt, events, end=len(speech.audio) / audio.SAMPLE_RATE)


def run(identity, model, idle, speech: tts.Speech, script) -> tuple[list[float], float, int]:
    """Per-frame latency (ms of audio past the frame's end when it came out), phones CPU ms, frames."""
    animator = Animator(identity, model, idle, MotionParams(block_frames=2), VideoParams(), render=False)
    latency, pushed = [], 0
    frame_ms = 1000 / animator.fps
    for start in range(0, len(speech.audio), CHUNK):
        piece = speech.audio[start : start + CHUNK]
        part = None if script is None else phonetic.script_slice(script, start / audio.SAMPLE_RATE)
        frames = animator.push(piece, part)
        pushed += len(piece)
        for f in frames:
            latency.append(pushed * 1000 / audio.SAMPLE_RATE - (f.index + 1) * frame_ms)
    return latency, animator.timings_ms["phones"], animator.frames_out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=len(SENTENCES))
    ap.add_argument("--formats", default="azure,polly")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, idle = load_model()
    identity = enroll(portrait(None)[1], GeometryParams(min_resolution=256), FaceAnalyzer())
    speeches = [tts.synthesize(t, voice="en-us") for t in SENTENCES[: args.sentences]]
    modes = ["recognised", *[f for f in args.formats.split(",") if f]]
    results = {}
    for mode in modes:  # every mode over the same speech, in the same run
        lat, cpu, frames = [], 0.0, 0
        for speech in speeches:
            script = None if mode == "recognised" else client_marks(speech, mode)
            frame_lat, c, n = run(identity, model, idle, speech, script)
            lat += frame_lat[2:]  # the first frames wait for the model's first block
            cpu, frames = cpu + c, frames + n
        results[mode] = {"latency_p50_ms": statistics.median(lat), "latency_max_ms": max(lat),
                         "phones_cpu_ms_per_frame": cpu / frames, "frames": frames}  # fmt: skip
    base = results["recognised"]
    print(f"model look-ahead: {model.lookahead_ms} ms with the recogniser (phone_delay_ms "
          f"{model.config.phone_delay_ms}); {len(speeches)} sentences, 20 ms chunks")  # fmt: skip
    print(f"{'mode':12s} {'latency p50':>12s} {'max':>8s} {'ratio':>7s} | {'phones CPU/frame':>17s} {'ratio':>7s}")
    for mode, r in results.items():
        print(f"{mode:12s} {r['latency_p50_ms']:9.1f} ms {r['latency_max_ms']:5.1f} ms "
              f"{r['latency_p50_ms'] / base['latency_p50_ms']:6.2f}x | {r['phones_cpu_ms_per_frame']:13.3f} ms "
              f"{r['phones_cpu_ms_per_frame'] / base['phones_cpu_ms_per_frame']:6.3f}x")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
