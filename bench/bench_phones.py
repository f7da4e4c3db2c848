"""The phone recogniser: how right, how far behind the audio, at what cost.

On GRID's speaker s1 (``../shared/data/grid_s1``: word timings for every sentence), the truth of a
10 ms row is the class of the phone spoken there: each word's phones from the CMU dictionary that
ships with pocketsphinx, split evenly over the word (no forced alignment inside words: a coarse
truth, the same for every delay). For each delay the streaming recogniser (``sonic_rt.audio.recognizer``)
labels every row, and the bench prints:

- ``acc``: share of speech rows (inside words) whose class matches the truth, and ``acc±2``: a match
  within 2 rows (20 ms) either side, which forgives the even split inside words;
- ``bilabial``: share of the words' /p b m/ phones heard as bilabials (within 40 ms), and
  ``false p``: share of the other speech rows labelled bilabial;
- ``agree``: share of rows whose streaming label equals the label a whole-clip decode gives
  (the ``delay`` the track runs behind the newest audio buys this agreement);
- ``conf``: mean confidence, and the accuracy of rows with confidence 1 against the rest;
- the cost: seconds of decoding per second of audio on one core (``x real time``), and per
  40 ms video frame, beside the cost of computing log-mel of the same audio (a baseline measured
  in the same run).

    python bench/bench_phones.py [--clips 100] [--delays 40,80,120,160]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import SHARED_DATA, pin_one_core

from sonic_rt.audio import HOP, SAMPLE_RATE, phoneset
from sonic_rt.audio.decode import decode_audio
from sonic_rt.audio.features import log_mel
from sonic_rt.audio.recognizer import PhoneRecognizer, recognize

ALIGN_UNIT = 25000  # GRID alignment times: 1/25000 s
P = phoneset.CLASS_INDEX["p"]
WHOLE_MS = 100_000  # a delay no utterance reaches: every label is the final decode's


def cmudict() -> dict[str, list[str]]:
    from pocketsphinx import get_model_path

    out = {}
    with open(get_model_path("en-us/cmudict-en-us.dict"), encoding="utf-8", errors="replace") as f:
        for line in f:
            word, *phones = line.split()
            out.setdefault(word, phones)
    return out


def truth_rows(align: str, rows: int, words: dict[str, list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Class per row (-1 outside words) and whether the row is a bilabial phone's."""
    classes = np.full(rows, -1, np.int64)
    for line in align.splitlines():
        start, end, word = line.split()
        a, b = int(start) * SAMPLE_RATE // ALIGN_UNIT // HOP, int(end) * SAMPLE_RATE // ALIGN_UNIT // HOP
        if word == "sil" or b <= a:
            continue
        phones = words.get(word, [])
        per_row = [phoneset.CLASS_INDEX[c] for ph in phones for c in phoneset.cmu_classes(ph)[:1]]
        if not per_row:
            continue
        k = np.arange(b - a) * len(per_row) // (b - a)
        classes[a:b][: len(k)] = np.asarray(per_row)[k][: max(0, min(b, rows) - a)]
    return classes, classes == P


def streamed(audio: np.ndarray, delay_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels as a live session gets them: 20 ms chunks."""
    rec = PhoneRecognizer(delay_ms)
    parts = [rec.push(audio[i : i + 320]) for i in range(0, len(audio), 320)]
    parts.append(rec.finish())
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=100)
    ap.add_argument("--delays", default="40,80,120,160")
    args = ap.parse_args()
    core = pin_one_core()
    grid = SHARED_DATA / "grid_s1"
    videos = sorted((grid / "videos").glob("*.mp4"))[:: max(1, 999 // args.clips)][: args.clips]
    if not videos:
        raise SystemExit(f"no GRID clips under {grid} (set SONIC_RT_SHARED_DATA)")
    words = cmudict()
    delays = [int(d) for d in args.delays.split(",")]
    clips = []
    for v in videos:
        audio = decode_audio(v)
        align = (grid / "alignments" / f"{v.stem}.align").read_text()
        truth, bilabial = truth_rows(align, -(-len(audio) // HOP), words)
        clips.append((audio, truth, bilabial, recognize(audio, WHOLE_MS)[0]))
    seconds = sum(len(c[0]) for c in clips) / SAMPLE_RATE
    t0 = time.perf_counter()
    for c in clips:
        log_mel(c[0])
    mel_s = time.perf_counter() - t0
    print(f"GRID s1: {len(clips)} clips, {seconds:.0f} s of speech; core {core}")
    print(f"{'delay':>6s} | {'acc':>5s} {'acc±2':>6s} {'bilabial':>8s} {'false p':>7s} {'agree':>6s} {'conf':>5s} "
          f"{'acc@1':>6s} {'acc<1':>6s} | {'x rt':>6s} {'ms/frame':>8s} | log-mel ms/frame")  # fmt: skip
    for delay in delays:
        hit = near = speech = agree = rows = 0
        heard_p = all_p = false_p = other = 0
        sure_hits, sure, unsure_hits, unsure = 0, 0, 0, 0
        confs = []
        t0 = time.perf_counter()
        labelled = [streamed(c[0], delay) for c in clips]
        cost = time.perf_counter() - t0
        for (_, truth, bilabial, whole), (classes, conf) in zip(clips, labelled, strict=True):
            n = min(len(truth), len(classes), len(whole))
            truth, classes, conf, whole, bilabial = truth[:n], classes[:n], conf[:n], whole[:n], bilabial[:n]
            inside = truth >= 0
            ok = classes == truth
            window = np.zeros(n, bool)
            for s in range(-2, 3):
                window |= np.roll(classes, s) == truth
            hit += int((ok & inside).sum())
            near += int((window & inside).sum())
            speech += int(inside.sum())
            agree += int((classes == whole).sum())
            rows += n
            confs.append(conf)
            sure_hits += int((ok & inside & (conf >= 1)).sum())
            sure += int((inside & (conf >= 1)).sum())
            unsure_hits += int((ok & inside & (conf < 1)).sum())
            unsure += int((inside & (conf < 1)).sum())
            false_p += int(((classes == P) & inside & ~bilabial).sum())
            other += int((inside & ~bilabial).sum())
            edges = np.flatnonzero(np.diff(np.r_[0, bilabial.astype(int), 0]))
            for a, b in zip(edges[::2], edges[1::2], strict=True):
                all_p += 1
                heard_p += int((classes[max(0, a - 4) : b + 4] == P).any())
        frames = seconds * 25
        bilabials = f"{heard_p / max(all_p, 1):8.3f} {false_p / max(other, 1):7.3f}"
        print(f"{delay:4d}ms | {hit / speech:5.3f} {near / speech:6.3f} {bilabials}"
              f" {agree / rows:6.3f} {np.concatenate(confs).mean():5.2f} {sure_hits / max(sure, 1):6.3f}"
              f" {unsure_hits / max(unsure, 1):6.3f} | {cost / seconds:6.3f} {cost / frames * 1e3:8.2f} |"
              f" {mel_s / frames * 1e3:.2f} ({cost / mel_s:.1f}x log-mel)")  # fmt: skip
    print("acc: class of speech rows vs the dictionary phones split evenly over each word's GRID timing")


if __name__ == "__main__":
    main()
