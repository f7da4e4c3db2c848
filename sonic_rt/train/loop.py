"""The training loop for the motion denoiser: windows, masks, noise, loss.

One step: draw ``batch`` windows of ``window`` frames from the clips (each source — real
videos, GRID's one speaker, synthetic speech — its ``SHARES`` of the windows, and within a source
in proportion to the clips' lengths), pick how many leading frames are
given as known (0 in a fifth of the windows: the start of a stream; otherwise 1 .. window-1),
drop the audio for classifier-free guidance in ``audio_drop`` of them, noise the motion at a
random diffusion time, and regress the clean motion on the frames not given.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..audio import MELS_PER_FRAME
from ..motion import vector
from ..motion.model import MotionDenoiser
from ..motion.sampler import make_scheduler
from .data import Clip

log = logging.getLogger("sonic_rt.train")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 6000
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    audio_drop: float = 0.15
    start_fraction: float = 0.2  # windows with no known frames
    video_share: float = 0.45  # windows from the many-speaker videos
    grid_share: float = 0.15  # from GRID's one speaker
    tts_share: float = 0.40  # from synthetic speech
    velocity_weight: float = 1.0
    seed: int = 0

    def shares(self) -> dict[str, float]:
        return {"video": self.video_share, "grid": self.grid_share, "tts": self.tts_share}


CHANNEL_WEIGHT = {"jaw_open": 4.0, "lip_width": 1.5, "lip_round": 1.5, "upper_lip": 1.0, "lower_lip": 1.0}


def statistics(clips: list[Clip]) -> dict[str, torch.Tensor]:
    """Normalisation statistics of mel and supervised motion channels."""
    mel = np.concatenate([c.mels[0] for c in clips])
    frames = np.concatenate([c.motion[c.valid] for c in clips])
    masks = np.concatenate([np.broadcast_to(c.channel_mask, (int(c.valid.sum()), vector.DIM)) for c in clips])
    mean = np.zeros(vector.DIM)
    std = np.ones(vector.DIM)
    for j in range(vector.DIM):
        vals = frames[masks[:, j] > 0, j]
        if len(vals) > 10 and vals.std() > 1e-4:
            mean[j], std[j] = vals.mean(), vals.std()
    return {
        "mel_mean": torch.tensor(mel.mean(axis=0), dtype=torch.float32),
        "mel_std": torch.tensor(mel.std(axis=0) + 1e-3, dtype=torch.float32),
        "motion_mean": torch.tensor(mean, dtype=torch.float32),
        "motion_std": torch.tensor(std, dtype=torch.float32),
    }


class WindowSampler:
    def __init__(
        self,
        clips: list[Clip],
        window: int,
        span: int,
        phone_span: int,
        shares: dict[str, float],
        rng: np.random.Generator,
    ):
        self.clips, self.window, self.span, self.phone_span, self.rng = clips, window, span, phone_span, rng
        starts = []
        for c in clips:
            ok = np.convolve(c.valid.astype(int), np.ones(window, int), mode="valid") == window
            starts.append(np.flatnonzero(ok))
        self.starts = starts
        lengths = np.array([len(s) for s in starts], np.float64)
        weight = np.zeros(len(clips))
        for source, share in shares.items():
            mine = np.array([c.source == source for c in clips])
            if mine.any() and lengths[mine].sum() > 0:
                weight[mine] = share * lengths[mine] / lengths[mine].sum()
        self.p = weight / weight.sum()

    def draw(self, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """motion (B, W, D), mel context (B, W, S, N_MELS), phonetic context (B, W, P, F), channel mask (B, D)."""
        w = self.window
        picks = self.rng.choice(len(self.clips), size=batch, p=self.p)
        mot, mel, phones, mask = [], [], [], []
        for k in picks:
            c = self.clips[k]
            f0 = int(self.rng.choice(self.starts[k]))
            v = int(self.rng.integers(len(c.mels)))
            mot.append(c.motion[f0 : f0 + w])
            first = (f0 + np.arange(w))[:, None] * MELS_PER_FRAME
            mel.append(c.mels[v][first + np.arange(self.span)[None]])
            phones.append(c.phones[v][first + np.arange(self.phone_span)[None]])
            mask.append(c.channel_mask)
        return np.stack(mot), np.stack(mel), np.stack(phones), np.stack(mask)


def train(model: MotionDenoiser, clips: list[Clip], cfg: TrainConfig) -> list[float]:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    for name, value in statistics(clips).items():
        getattr(model, name).copy_(value)
    window = model.config.window
    sampler = WindowSampler(clips, window, model.mel_span, model.phone_span, cfg.shares(), rng)
    scheduler = make_scheduler(model.config.num_train_timesteps)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 300) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps))
    )
    ch_weight = torch.ones(vector.DIM)
    for name, w in CHANNEL_WEIGHT.items():
        ch_weight[vector.INDEX[name]] = w
    model.train()
    losses, t0 = [], time.perf_counter()
    for step in range(cfg.steps):
        mot, mel, phones, mask = sampler.draw(cfg.batch)
        x0 = model.normalise(torch.from_numpy(mot))
        chan = torch.from_numpy(mask)[:, None, :] * ch_weight
        b = cfg.batch
        n_known = torch.randint(1, window, (b,))
        n_known[torch.rand(b) < cfg.start_fraction] = 0
        known_mask = (torch.arange(window)[None] < n_known[:, None]).float()[..., None]
        emb = model.embed_audio(torch.from_numpy(mel), torch.from_numpy(phones))
        drop = (torch.rand(b) < cfg.audio_drop)[:, None, None]
        emb = torch.where(drop, model.null_audio.expand_as(emb), emb)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (b,))
        noise = torch.randn_like(x0)
        xt = scheduler.add_noise(x0, noise, t)
        pred = model(xt, t, emb, x0, known_mask)
        free = 1.0 - known_mask
        err = ((pred - x0) ** 2 * chan * free).sum() / (chan * free).sum().clamp(min=1)
        dpred, dx0 = pred[:, 1:] - pred[:, :-1], x0[:, 1:] - x0[:, :-1]
        free_v = free[:, 1:]
        err_v = ((dpred - dx0) ** 2 * chan * free_v).sum() / (chan * free_v).sum().clamp(min=1)
        loss = err + cfg.velocity_weight * err_v
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 250 == 0 or step == cfg.steps - 1:
            log.info("step %5d  loss %.4f  (%.0f s)", step, float(np.mean(losses[-250:])), time.perf_counter() - t0)
    model.eval()
    return losses
