"""``python -m sonic_rt.train``: reproduce the shipped motion model.

    python -m sonic_rt.train --data ../shared/data --out sonic_rt/weights/motion

Tracks the talking videos and GRID's sentences (cached under ``--cache``), recognises their
phones (cached too), synthesises speech with espeak-ng and with festival's and flite's voices,
trains the denoiser on all of it, and writes ``config.json`` + ``diffusion_pytorch_model.safetensors``
(diffusers' ``save_pretrained``), ``idle.json`` (blink statistics from the videos) and
``train_report.json`` (data, offsets, losses) into ``--out``. ``--inputs mel`` or ``phones``
trains the ablations of the lip-sync benchmark. Deterministic for a seed on one machine; the
times are in ``train_report.json`` (``seconds``: about 40 minutes on a 2-core CPU from empty
caches).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import click
import numpy as np
import torch

from ..motion.idle import IdleParams
from ..motion.model import INPUTS, MotionDenoiser
from . import data
from .loop import TrainConfig, train
from .sentences import corpus

log = logging.getLogger("sonic_rt.train")


@click.command()
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=Path("../shared/data"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("sonic_rt/weights/motion"), show_default=True)
@click.option(
    "--cache", type=click.Path(path_type=Path), default=Path.home() / ".cache/sonic-rt/train", show_default=True
)
@click.option("--steps", type=int, default=TrainConfig.steps, show_default=True)
@click.option("--batch", type=int, default=TrainConfig.batch, show_default=True)
@click.option("--tts-utterances", type=int, default=300, show_default=True, help="espeak-ng utterances")
@click.option("--voice-utterances", type=int, default=150, show_default=True, help="festival/flite utterances")
@click.option("--grid-clips", type=int, default=None, help="GRID sentences to use (default: all)")
@click.option(
    "--augment", "n_aug", type=int, default=2, show_default=True, help="augmented copies of each clip's audio"
)
@click.option("--no-video", is_flag=True, help="train on synthetic speech only")
@click.option("--no-tts", is_flag=True, help="train on the videos only")
@click.option("--inputs", type=click.Choice(INPUTS), default="both", show_default=True, help="what the model reads")
@click.option(
    "--known-mouth/--no-known-mouth",
    default=True,
    show_default=True,
    help="show the previous window's mouth to the denoiser",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
def main(
    data_dir,
    out,
    cache,
    steps,
    batch,
    tts_utterances,
    voice_utterances,
    grid_clips,
    n_aug,
    no_video,
    no_tts,
    inputs,
    known_mouth,
    seed,
    threads,
) -> None:
    if no_video and no_tts:
        raise click.UsageError("--no-video with --no-tts leaves nothing to train on")
    if not no_video and not (data_dir / "videos").is_dir():
        raise click.UsageError(f"no talking videos under {data_dir / 'videos'}: pass --data DIR, or --no-video")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = MotionDenoiser(known_mouth=known_mouth, inputs=inputs)
    spans = data.Spans.of(model.config)
    phones = data.PhoneCache(cache / "phones")
    t0 = time.perf_counter()
    clips: list[data.Clip] = []
    report: dict = {"seed": seed, "inputs": inputs, "held_out": list(data.HELD_OUT)}
    idle = IdleParams()
    if not no_video:
        tracked = data.tracked_clips(data_dir, cache, ("av2_", "av3_"), own_speech_only=True)
        lags = data.documented_lags(data_dir)
        videos = [c for tc in tracked if (c := data.video_clip(tc, lags, spans, n_aug, rng, phones)) is not None]
        clips += videos
        report["videos"] = [
            {"name": c.name, "frames": len(c.motion), "lag_frames": c.info["lag_frames"],
             "lag_r": round(c.info["lag_r"], 3), "shift_frames": c.info["shift_frames"]}
            for c in videos
        ]  # fmt: skip
        grid = [
            c
            for tc in data.grid_clips(data_dir, cache, grid_clips)
            if (c := data.video_clip(tc, {}, spans, n_aug, rng, phones, source="grid")) is not None
        ]
        clips += grid
        report["grid_clips"] = len(grid)
        log.info("video clips ready in %.0f s (%d GRID)", time.perf_counter() - t0, len(grid))
        everyone = data.tracked_clips(data_dir, cache, ("av2_",)) + data.tracked_clips(data_dir, cache, ("drv_",))
        idle, report["blinks"] = data.idle_statistics(everyone)
    if not no_tts:
        clips += data.tts_clips(corpus(), tts_utterances, spans, n_aug, rng, phones)
        clips += data.voice_clips(corpus(), voice_utterances, spans, n_aug, rng, phones)
    report["frames"] = {
        src: int(sum(len(c.motion) for c in clips if c.source == src)) for src in ("video", "grid", "tts")
    }
    report["data_seconds"] = round(time.perf_counter() - t0, 1)
    log.info("data ready in %.0f s: %s", time.perf_counter() - t0, report["frames"])

    cfg = TrainConfig(steps=steps, batch=batch, seed=seed)
    t1 = time.perf_counter()
    losses = train(model, clips, cfg)
    report["train_seconds"] = round(time.perf_counter() - t1, 1)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    idle.save(out / "idle.json")
    report["train"] = asdict(cfg)
    report["loss_first"] = float(np.mean(losses[:100]))
    report["loss_last"] = float(np.mean(losses[-100:]))
    report["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "train_report.json").write_text(json.dumps(report, indent=1) + "\n")
    log.info("wrote %s (%.0f s)", out, report["seconds"])


if __name__ == "__main__":
    main()
