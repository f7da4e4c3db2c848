"""Visemes a lip-reader can see, on rendered frames of speech whose phones are known.

For every voice, sentences rich in /p b m/, /f v/ and /u w/ are synthesised (espeak-ng through
``sonic_rt.audio.tts``; festival's us_slt_hts through ``sonic_rt.train.voices`` when installed) and
animated by the product's own core (``sonic_rt.animator.Animator``: motion, lip-sync offset,
retargeting, rendering) at ``--size`` px. MediaPipe measures every frame, and each target phone of
the KNOWN phonemes (``Speech.phonemes``) is scored on the frames whose centre lies in
``[start - 50 ms, end + 40 ms]`` (espeak times a voiceless stop at its burst, so its closure is the
50 ms before; the mouth may trail by a frame): a hit when any of them shows the shape
(``sonic_rt.measure``: ``lips_closed`` for /p b m/, ``lip_to_teeth`` for /f v/, ``lips_rounded`` for
/u w/, each against the portrait's own rest frame). Modes, on the same audio:

- ``given``: ``animator.push(audio, script=speech.phonemes)``, the server's text-to-speech path;
- ``recognised``: ``animator.push(audio)``, phones recognised from the audio (an English model);
- ``azure``, ``polly``: the known phonemes sent as a client's TTS would send them, Azure viseme IDs
  or Polly visemes (start times only; ``bench_timings.client_marks``), read by ``sonic_rt.audio.timings``;
- ``targets``: the training targets (``sonic_rt.train.visemes.targets``) drawn directly: what a model
  that had learnt them exactly would show, a ceiling for the two above and a check of the measures.

The baseline, from the same frames and the same window rule: open vowels (/a ɑ æ ɛ ʌ ɒ ɔ/) counted
as closed or at the teeth, spread vowels (/i ɪ e ɛ/) counted as rounded, each only where its window
touches no phone that would legitimately show that shape. A measure that always says yes scores as
high there as on the targets. Last, the /p b m/ closed share with every window moved by -80..+80 ms:
where it peaks tells whether the mouth leads (peak at a negative shift) or trails the sound.

Frames carry a fixed watermark payload (``--watermark``): a random one moves MediaPipe's landmarks
enough to flip borderline phones (over four payloads the mean closed share varied by 4 points).

    python bench/bench_visemes.py [--weights DIR] [--size 256] [--langs en-us,cmn,fr,de,es,festival]
        [--modes given,azure,polly,recognised,targets] [--offset-ms -40] [--sheet peter.png] [--json out.json]
        [--misses]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from common import portrait

from sonic_rt.animator import Animator, frames_for_samples, rest_image
from sonic_rt.audio import tts
from sonic_rt.config import GeometryParams, MotionParams, VideoParams
from sonic_rt.errors import SonicError
from sonic_rt.face import landmarks as lm
from sonic_rt.face.analysis import FaceAnalyzer
from sonic_rt.measure import VISEMES, class_spans, lips_closed, score_visemes, viseme_shares
from sonic_rt.motion.stream import load_model
from sonic_rt.provenance.marks import Marks
from sonic_rt.render.identity import enroll
from sonic_rt.render.renderer import Renderer
from sonic_rt.render.retarget import to_portrait
from sonic_rt.train import visemes

FESTIVAL = "festival:us_slt_hts"
PETER = "Peter picked a pepper."
ENGLISH = (
    PETER,
    "Bob and Mum moved the blue boat.",
    "We went to buy five fine violins.",
    "Who would move the wooden box for me?",
    "I had a hard day at the castle, and I sat down.",  # open vowels away from the lips: the baseline
)
SENTENCES: dict[str, tuple[str, ...]] = {
    "en-us": ENGLISH,
    "cmn": ("妈妈骑马，马慢，妈妈骂马。", "八百标兵奔北坡。", "爸爸买了五本书。", "我们五个人去吃饭。",
            "他在大厅看电视，大家都在那里。"),
    "fr": ("Pourquoi papa boit-il du vin ?", "Le beau bébé boit du lait.", "Vous voulez venir avec moi ?",
           "Où sont les outils du loup ?", "La tante de Sacha a tant de chats."),
    "de": ("Mama bringt Brot und Butter.", "Wir wollen früh nach Hause fahren.", "Peter bläst auf der Pfeife.",
           "Du suchst den guten Schuh im Bus.", "Der Hase hat lange Zähne, sagt das Kind."),
    "es": ("Pablo bebe un buen vino.", "Mi mamá fue a buscar fruta.", "Juan vive en una bonita casa.",
           "Tu tío busca una nube azul.", "La casa está al lado del lago."),
    FESTIVAL: ENGLISH,
}  # fmt: skip
MODES = ("given", "azure", "polly", "recognised", "targets")
TILE = (128, 96)
WATERMARK = 0x5EED5EED
SHIFTS_MS = (
    -80,
    -40,
    0,
    40,
    80,
)  # windows moved later by this much: at which lag does the mouth close?  # contact-sheet tile, px (width, height)


def synthesize(text: str, voice: str) -> tts.Speech:
    if voice.startswith("festival:"):
        from sonic_rt.train import voices

        return voices.synthesize(text, voice)
    return tts.synthesize(text, voice=voice)


def animate(mode: str, speech: tts.Speech, identity, model, idle, params: MotionParams,
            video: VideoParams | None = None, watermark: int = WATERMARK) -> list[np.ndarray]:  # fmt: skip
    """The rendered frames of ``speech`` in ``mode``."""
    video = video or VideoParams()
    n = frames_for_samples(len(speech.audio), video.fps)
    if mode == "targets":
        renderer = Renderer(identity)
        own_gap = identity.own_gap / identity.iod
        return [renderer.render(v) for v in to_portrait(visemes.targets(speech.phonemes, n), own_gap)]
    # a fixed watermark payload: a fresh random one changes pixels, and with them MediaPipe's landmarks
    animator = Animator(identity, model, idle, params, video, marks=Marks(watermark=watermark))
    script = speech.phonemes if mode == "given" else None
    if mode in ("azure", "polly"):
        from bench_timings import client_marks

        script = client_marks(speech, mode)
    frames = [*animator.push(speech.audio, script=script), *animator.finish(n)]
    return [f.image for f in frames]


def mouth_box(identity) -> tuple[int, int, int, int]:
    """A box around the mouth at rest, 1.6 x 1.2 IOD, in output pixels (x0, y0, x1, y1)."""
    pts = identity.landmarks[list(lm.LIPS_OUTER_UPPER + lm.LIPS_OUTER_LOWER), :2]
    cx, cy = pts.mean(axis=0)
    half_w, half_h = 0.8 * identity.iod, 0.6 * identity.iod
    size = identity.out_size
    x0, y0 = int(max(cx - half_w, 0)), int(max(cy - half_h, 0))
    return x0, y0, int(min(cx + half_w, size)), int(min(cy + half_h, size))


def sheet_rows(label: str, images: list[np.ndarray], points, rest_points, speech: tts.Speech, occurrences, box,
               columns: int = 12) -> list[np.ndarray]:  # fmt: skip
    """Contact-sheet rows for one mode: every frame's mouth, labelled with its index and the phone at
    its centre. Frames inside a /p b m/ window are framed green where the lips are closed, red where
    they are not; a window with no green frame is a miss."""
    spans = class_spans(speech.phonemes)
    fps = VideoParams().fps
    windows = {k for o in occurrences if o.viseme == "closed" and not o.control for k in o.frames}
    x0, y0, x1, y1 = box
    tiles = []
    for k, image in enumerate(images):
        tile = cv2.resize(np.ascontiguousarray(image[y0:y1, x0:x1]), TILE, interpolation=cv2.INTER_AREA)
        centre = (k + 0.5) / fps
        phone = next((s.symbols for s in spans if s.start <= centre < s.end), "")
        tile[:15] = (tile[:15] * 0.3).astype(np.uint8)
        cv2.putText(tile, f"{k} {phone}"[:16], (4, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (255, 255, 255), 1, cv2.LINE_AA)
        if k in windows:
            closed = points[k] is not None and lips_closed(points[k], rest_points)
            cv2.rectangle(tile, (0, 0), (TILE[0] - 1, TILE[1] - 1), (0, 200, 0) if closed else (230, 0, 0), 3)
        tiles.append(tile)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    head = np.zeros((18, TILE[0] * columns, 3), np.uint8)
    cv2.putText(head, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return [head, *rows]


def pct(hits_n: tuple[int, int]) -> str:
    hits, n = hits_n
    return f"{100 * hits / n:5.1f}% {n:3d}" if n else f"{'-':>6s} {0:3d}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=None, help="motion model folder (default: the shipped one)")
    ap.add_argument("--size", type=int, default=256, help="output frame size, px")
    ap.add_argument("--langs", default=",".join(SENTENCES), help="voices: espeak codes and/or " + FESTIVAL)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--portrait", default=None, help="a shared-data image name (default: the astronaut)")
    ap.add_argument("--steps", type=int, default=MotionParams.inference_steps)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--watermark", type=lambda x: int(x, 0), default=WATERMARK,
                    help="the frames' watermark payload (fixed, so that runs repeat)")  # fmt: skip
    ap.add_argument("--offset-ms", type=float, default=VideoParams.lip_sync_offset_ms, help="lip_sync_offset_ms")
    ap.add_argument("--sheet", type=Path, default=None, help=f"contact sheet of {PETER!r} (en-us) as PNG")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--misses", action="store_true", help="list every target phone that missed its shape")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the model is small; OpenMP threads only contend with MediaPipe's
    t_start = time.perf_counter()
    modes = [m for m in args.modes.split(",") if m]
    if unknown := set(modes) - set(MODES):
        raise SystemExit(f"unknown modes {sorted(unknown)}; one of {', '.join(MODES)}")
    voices_wanted = [v if v != "festival" else FESTIVAL for v in args.langs.split(",") if v]
    model, idle = load_model(args.weights) if args.weights else load_model()
    params = MotionParams(inference_steps=args.steps, seed=args.seed)
    analyzer = FaceAnalyzer()
    name, image = portrait(args.portrait)
    identity = enroll(image, GeometryParams(min_resolution=args.size), analyzer)
    rest_points = analyzer.landmarks_only(rest_image(identity))
    if rest_points is None:
        raise SystemExit("MediaPipe finds no face in the portrait's rest frame")
    video = VideoParams(lip_sync_offset_ms=args.offset_ms)
    fps = video.fps
    box = mouth_box(identity)
    print(f"portrait {name}, {identity.out_size} px; weights {args.weights or 'shipped'}; lip_sync_offset_ms"
          f" {args.offset_ms:+.0f}; window: the frames whose"
          " centre lies in [phone start - 50 ms, phone end + 40 ms], a hit when any shows the shape")  # fmt: skip
    head = f"{'voice':22s} {'mode':10s} |"
    for v in VISEMES:
        head += f" {v.name + ' %':>7s} {'n':>3s}"
    head += " | baseline:"
    for v in VISEMES:
        head += f" {v.name + ' %':>7s} {'n':>3s}"
    print(head + " | no face")
    rows, sheet = [], []
    for voice in voices_wanted:
        speeches = []
        for text in SENTENCES.get(voice, ENGLISH if voice.startswith("festival:") else ()):
            try:
                speeches.append((text, synthesize(text, voice)))
            except SonicError as err:
                print(f"{voice:22s} skipped: {err}")
                break
        if not speeches:
            continue
        for mode in modes:
            occurrences, missing, frames_total = [], 0, 0
            shifted = {ms: [] for ms in SHIFTS_MS}
            for text, speech in speeches:
                images = animate(mode, speech, identity, model, idle, params, video, args.watermark)
                points = [analyzer.landmarks_only(im) for im in images]
                missing += sum(p is None for p in points)
                frames_total += len(points)
                occ = score_visemes(speech.phonemes, points, rest_points, fps)
                occurrences += occ
                for ms in SHIFTS_MS:
                    shifted[ms] += score_visemes(speech.phonemes, points, rest_points, fps, ms / 1000)
                if args.misses:
                    for o in occ:
                        if not o.hit and not o.control:
                            print(f"    miss {mode} {o.viseme}: /{o.span.symbols}/ {o.span.start:.2f}-{o.span.end:.2f}"
                                  f" s, frames {o.frames[0]}-{o.frames[-1]} of {text!r}")  # fmt: skip
                if args.sheet and voice == "en-us" and text == PETER:
                    sheet += sheet_rows(f"{PETER}  ({voice}, {mode})", images, points, rest_points, speech, occ, box)
            shares = viseme_shares(occurrences)
            by_shift = {ms: {k: list(v) for k, v in viseme_shares(o)["closed"].items()} for ms, o in shifted.items()}
            rows.append({"voice": voice, "mode": mode, "frames": frames_total, "no_face": missing,
                         "closed_by_shift_ms": by_shift,
                         "shares": {k: {kind: list(v) for kind, v in row.items()} for k, row in shares.items()},
                         "occurrences": [{"viseme": o.viseme, "symbols": o.span.symbols, "start": o.span.start,
                                          "end": o.span.end, "control": o.control, "hit": o.hit,
                                          "frames": list(o.frames)} for o in occurrences]})  # fmt: skip
            line = f"{voice:22s} {mode:10s} |"
            for v in VISEMES:
                line += f" {pct(shares[v.name]['target'])}"
            line += " |          "
            for v in VISEMES:
                line += f" {pct(shares[v.name]['control'])}"
            print(line + f" | {missing}/{frames_total}", flush=True)
    for mode in modes:
        subset = [r for r in rows if r["mode"] == mode]
        if not subset:
            continue
        line = f"{'mean over voices':22s} {mode:10s} |"
        for kind in ("target", "control"):
            for v in VISEMES:
                shares = [h / n for h, n in (r["shares"][v.name][kind] for r in subset) if n]
                line += f" {100 * np.mean(shares):6.1f}% {len(shares):3d}" if shares else f" {'-':>7s} {0:3d}"
            line += " |          " if kind == "target" else ""
        print(line + "   (n: voices)")
    for mode in modes:
        subset = [r for r in rows if r["mode"] == mode]
        if not subset:
            continue
        line = f"{'closed, window moved':22s} {mode:10s} |"
        for ms in SHIFTS_MS:
            target = np.mean([h / n for h, n in (r["closed_by_shift_ms"][ms]["target"] for r in subset) if n])
            control = np.mean([h / n for h, n in (r["closed_by_shift_ms"][ms]["control"] for r in subset) if n])
            line += f" {ms:+4d} ms {100 * target:5.1f}% ({100 * control:4.1f}%)"
        print(line + "   (/p b m/ closed, mean over voices; baseline in brackets)")
    if args.sheet and sheet:
        width = max(r.shape[1] for r in sheet)
        sheet = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in sheet]
        cv2.imwrite(str(args.sheet), cv2.cvtColor(np.concatenate(sheet, axis=0), cv2.COLOR_RGB2BGR))
        print(f"contact sheet: {args.sheet}")
    if args.json:
        args.json.write_text(json.dumps({"portrait": name, "size": identity.out_size, "rows": rows}, indent=1))
    print(f"{time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
