"""Few-step sampling of a motion window: a diffusers scheduler driven by a visible loop.

Classifier-free guidance on audio: the conditional and unconditional branches run as one batch
(the unconditional one with the model's learnt null audio embedding) and are combined as
``uncond + guidance * (cond - uncond)`` on the predicted clean motion.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler

from ..config import INFERENCE_STEPS_RANGE, check_range
from .model import MotionDenoiser


def make_scheduler(num_train_timesteps: int = 1000) -> DDIMScheduler:
    """DDIM with trailing timesteps (good at 2-8 steps), predicting the clean sample."""
    return DDIMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="sample",
        clip_sample=False,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
    )


@torch.inference_mode()
def sample_window(
    model: MotionDenoiser,
    scheduler: DDIMScheduler,
    audio_emb: torch.Tensor,
    known: torch.Tensor,
    known_mask: torch.Tensor,
    steps: int,
    guidance: float,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Normalised clean motion ``(B, W, D)`` for audio embeddings ``(B, W, A)``.

    ``known``/``known_mask`` as in ``MotionDenoiser.forward``. DDIM with eta = 0 draws noise only
    once, at the start: ``noise`` ``(B, W, D)`` when given, else drawn from ``generator``; the
    result is deterministic for given starting noise. Every tensor on the model's device.
    """
    check_range("inference_steps", steps, INFERENCE_STEPS_RANGE)
    batch, window = audio_emb.shape[:2]
    if noise is None:
        noise = torch.randn((batch, window, model.config.motion_dim), generator=generator)
    x = noise.to(audio_emb.device)
    guided = guidance != 1.0
    if guided:
        audio_emb = torch.cat([audio_emb, model.null_audio.expand_as(audio_emb)])
        known = torch.cat([known, known])
        known_mask = torch.cat([known_mask, known_mask])
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        # 1. predict the clean motion, both branches in one batch
        model_in = torch.cat([x, x]) if guided else x
        pred = model.denoise(model_in, t.to(x.device).expand(len(model_in)), audio_emb, known, known_mask)
        # 2. classifier-free guidance on audio
        if guided:
            cond, uncond = pred.chunk(2)
            pred = uncond + guidance * (cond - uncond)
        # 3. one scheduler step towards t - 1
        x = scheduler.step(pred, t, x).prev_sample
    return x
