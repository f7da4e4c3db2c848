"""The motion denoiser: a small transformer over a window of motion vectors.

Read top to bottom: per-frame audio embeddings (a two-layer MLP over a fixed span of log-mel
frames and of phonetic-track rows around each video frame, ``sonic_rt.audio.phonetic``), a sinusoidal
diffusion-time embedding, and a pre-norm transformer over the window's frames. Each frame's
token sees its noisy motion, the known motion of the previous window's tail (with a mask
saying which frames are known) and its audio embedding. The network predicts the clean motion
(``prediction_type="sample"``).

Look-ahead is bounded by construction: video frame ``n`` (mel frames ``4n .. 4n+3``) sees mel
frames ``4n - mel_past .. 4n + 3 + mel_future``, i.e. ``mel_future * 10 ms`` of audio after the
frame ends, and phonetic rows ``4n - phone_past .. 4n + 3 + phone_future``; the recogniser gives a
row out ``phone_delay_ms`` after its audio, so the look-ahead is the larger of ``mel_future * 10``
and ``phone_future * 10 + phone_delay_ms`` (120 ms by default). A window is generated only once
its last frame's context is in. ``inputs`` says what the embedding reads: ``"both"``, or
``"mel"`` / ``"phones"`` alone (the ablations of the lip-sync benchmark).

Motion and mel features are normalised with statistics measured on the training data and
stored as buffers next to the weights. Shapes: ``B`` batch, ``W`` window frames, ``D`` motion
channels, ``S`` mel frames of context, ``P`` phonetic rows of context, ``F`` features a row.
"""

from __future__ import annotations

import math
import warnings

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .. import audio
from ..audio import phonetic
from . import vector

MOUTH_INDEX = [vector.INDEX[c] for c in vector.MOUTH_CHANNELS]
INPUTS = ("both", "mel", "phones")


class MotionDenoiser(ModelMixin, ConfigMixin):
    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        motion_dim: int = vector.DIM,
        n_mels: int = audio.N_MELS,
        mel_past: int = 8,
        mel_future: int = 12,
        phone_features: int = phonetic.FEATURES,
        phone_past: int = 16,
        phone_future: int = 4,
        phone_delay_ms: int = 80,
        inputs: str = "both",
        window: int = 20,
        d_model: int = 128,
        n_layers: int = 4,
        n_heads: int = 4,
        d_ff: int = 384,
        audio_dim: int = 128,
        dropout: float = 0.1,
        num_train_timesteps: int = 1000,
        known_mouth: bool = True,
    ) -> None:
        super().__init__()
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, got {inputs!r}")
        span = mel_past + audio.MELS_PER_FRAME + mel_future
        phone_span = phone_past + audio.MELS_PER_FRAME + phone_future
        width = (span * n_mels if inputs != "phones" else 0) + (phone_span * phone_features if inputs != "mel" else 0)
        self.audio_in = nn.Sequential(nn.Linear(width, 384), nn.GELU(), nn.Dropout(dropout), nn.Linear(384, audio_dim))
        self.null_audio = nn.Parameter(torch.zeros(audio_dim))
        self.time_mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
        self.token_in = nn.Linear(2 * motion_dim + 1 + audio_dim, d_model)
        self.position = nn.Parameter(torch.zeros(window, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, d_ff, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, motion_dim)
        nn.init.normal_(self.position, std=0.02)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        # data statistics, measured by training and stored with the weights
        self.register_buffer("mel_mean", torch.zeros(n_mels))
        self.register_buffer("mel_std", torch.ones(n_mels))
        self.register_buffer("motion_mean", torch.zeros(motion_dim))
        self.register_buffer("motion_std", torch.ones(motion_dim))
        self._traced: dict[tuple[int, ...], torch.jit.ScriptModule] = {}

    @property
    def mel_span(self) -> int:
        return self.config.mel_past + audio.MELS_PER_FRAME + self.config.mel_future

    @property
    def phone_span(self) -> int:
        return self.config.phone_past + audio.MELS_PER_FRAME + self.config.phone_future

    @property
    def lookahead_ms(self) -> int:
        """Audio needed after the end of a frame before it can be generated, ms."""
        row_ms = audio.HOP * 1000 // audio.SAMPLE_RATE
        cfg = self.config
        return max(cfg.mel_future * row_ms, cfg.phone_future * row_ms + cfg.phone_delay_ms)

    def embed_audio(self, mel_context: torch.Tensor, phone_context: torch.Tensor) -> torch.Tensor:
        """Raw log-mel ``(..., S, n_mels)`` and phonetic rows ``(..., P, F)`` around each frame
        -> ``(..., audio_dim)``."""
        parts = []
        if self.config.inputs != "phones":
            parts.append(((mel_context - self.mel_mean) / self.mel_std).flatten(-2))
        if self.config.inputs != "mel":
            parts.append(phone_context.flatten(-2))
        return self.audio_in(torch.cat(parts, dim=-1))

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        half = self.config.d_model // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        return self.time_mlp(torch.cat([torch.sin(args), torch.cos(args)], dim=-1))

    def hide_mouth(self, known: torch.Tensor) -> torch.Tensor:
        """Known motion as the network sees it: with ``known_mouth`` off the mouth channels of the
        previous window are withheld, so the mouth follows the audio instead of its own past."""
        if self.config.known_mouth:
            return known
        out = known.clone()
        out[..., MOUTH_INDEX] = 0.0
        return out

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        audio_emb: torch.Tensor,
        known: torch.Tensor,
        known_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Predict clean normalised motion ``(B, W, D)``.

        ``sample`` noisy motion (B, W, D); ``timestep`` (B,); ``audio_emb`` (B, W, audio_dim),
        use ``null_audio`` rows for the unconditional branch; ``known`` (B, W, D) normalised
        motion of frames already emitted, zero elsewhere; ``known_mask`` (B, W, 1) 1 where known.
        """
        w = sample.shape[1]
        known = self.hide_mouth(known)
        tokens = self.token_in(torch.cat([sample, known * known_mask, known_mask, audio_emb], dim=-1))
        tokens = tokens + self.position[:w] + self.time_embedding(timestep)[:, None]
        return self.head(self.norm(self.blocks(tokens)))

    def denoise(self, *inputs: torch.Tensor) -> torch.Tensor:
        """``forward`` for inference: a TorchScript trace per input shape (cached), which halves
        the per-call overhead of this small network on a CPU. Use under ``torch.inference_mode``."""
        if self.training:
            return self(*inputs)
        key = tuple(inputs[0].shape)
        traced = self._traced.get(key)
        if traced is None:
            with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.compile,
                warnings.simplefilter("ignore", DeprecationWarning)  # which needs a C++ toolchain at run time
                traced = torch.jit.freeze(torch.jit.trace(self, inputs, check_trace=False))
            self._traced[key] = traced
        return traced(*inputs)

    def train(self, mode: bool = True) -> MotionDenoiser:
        self._traced.clear()  # weights may change: traces hold frozen copies
        return super().train(mode)

    def normalise(self, motion_abs: torch.Tensor) -> torch.Tensor:
        return (motion_abs - self.motion_mean) / self.motion_std

    def denormalise(self, motion_norm: torch.Tensor) -> torch.Tensor:
        return motion_norm * self.motion_std + self.motion_mean
