"""Audio features in, motion vectors out, block by block, as audio arrives.

A ``MotionStream`` keeps the log-mel frames and phonetic rows (``sonic_rt.audio.phonetic``) it has been
given, turns each video frame's context into an audio embedding as soon as that context is
complete (the frame's own audio plus the model's look-ahead, in both), and once ``block_frames``
embeddings are ready generates them as one window: the previous window's tail (the last
``window - block_frames`` frames emitted) is given to the denoiser as known motion, so
consecutive windows join without a seam. A stream starts from the portrait at rest (a tail of
neutral frames over silence).

Output motion is absolute-mouth motion (see ``sonic_rt.render.retarget``), causally smoothed
(``sonic_rt.motion.smoothing``), with the idle layer (blinks, breathing) added and the user's
``dynamic_scale``/``motion_scale`` applied; the tail
fed back to the model is the model's own unscaled output, so scaling never feeds back.

Every model call goes through a ``Runner`` (``sonic_rt.motion.batch``): by default one of the stream's
own, or one shared by many streams that merges their calls into batches. The starting noise of
each window comes from the stream's own generator, so what a stream makes does not depend on
which others it is batched with.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from pathlib import Path

import numpy as np
import torch

from .. import audio
from ..audio.features import SILENCE_LOG_MEL
from ..audio.phonetic import FEATURES, rest_rows
from ..config import MotionParams
from . import vector
from .batch import DirectRunner, Runner
from .idle import IdleMotion, IdleParams
from .model import MotionDenoiser
from .smoothing import MotionSmoother

WEIGHTS_DIR = Path(__file__).parents[1] / "weights" / "motion"  # sonic_rt/weights/motion
MOTION_SCALE_CHANNELS = ("smile", "brows", *vector.HEAD_CHANNELS)  # what motion_scale scales
MODEL_SILENT_CHANNELS = ("mouth_close", "blink_left", "blink_right")  # left to retarget / idle layer


def load_model(path: str | Path = WEIGHTS_DIR) -> tuple[MotionDenoiser, IdleParams]:
    """The shipped (or a given) motion model and its idle statistics, from a local folder."""
    path = Path(path)
    model = MotionDenoiser.from_pretrained(str(path), local_files_only=True, low_cpu_mem_usage=False)
    model.eval()
    return model, IdleParams.load(path / "idle.json")


def _scales(params: MotionParams) -> np.ndarray:
    scale = np.ones(vector.DIM, np.float32)
    scale[[vector.INDEX[c] for c in vector.MOUTH_CHANNELS]] = params.dynamic_scale
    scale[[vector.INDEX[c] for c in MOTION_SCALE_CHANNELS]] = params.motion_scale
    return scale


class MotionStream:
    """Streaming motion generation for one voice. Not thread-safe: one per session."""

    def __init__(
        self, model: MotionDenoiser, idle: IdleParams, params: MotionParams, runner: Runner | None = None
    ) -> None:
        cfg = model.config
        if params.block_frames >= cfg.window:
            raise ValueError(f"block_frames must be below the model window ({cfg.window})")
        self.model = model
        self.params = params
        self.runner = runner if runner is not None else DirectRunner(model)
        self._generator = torch.Generator().manual_seed(params.seed)
        self._idle = IdleMotion(idle, params.seed)
        self._smooth = MotionSmoother(params.smoothing)
        self._scale = _scales(params)
        self._silent = [vector.INDEX[c] for c in MODEL_SILENT_CHANNELS]
        self._past, self._future = cfg.mel_past, cfg.mel_future
        self._ph_past, self._ph_future = cfg.phone_past, cfg.phone_future
        # mel frames kept from global index self._mel_base on; earlier ones are no longer needed
        self._mel = np.full((self._past, audio.N_MELS), SILENCE_LOG_MEL, np.float32)
        self._mel_base = -self._past
        self._mel_count = 0  # mel frames received
        # phonetic rows the same way, on the same 10 ms grid
        self._ph = rest_rows(self._ph_past)
        self._ph_base = -self._ph_past
        self._ph_count = 0
        self._pending: list[torch.Tensor] = []  # embeddings of frames not yet generated
        self._embedded = 0  # frames whose embedding exists
        self.frames_out = 0
        silence = torch.full((1, model.mel_span, audio.N_MELS), SILENCE_LOG_MEL)
        rest_emb = self.runner.embed(silence, torch.from_numpy(rest_rows(model.phone_span))[None])[0]
        with torch.inference_mode():
            rest = model.normalise(torch.zeros(vector.DIM))
        self._tail: deque[tuple[torch.Tensor, torch.Tensor]] = deque(
            [(rest, rest_emb)] * (cfg.window - 1), maxlen=cfg.window - 1
        )

    @property
    def lookahead_ms(self) -> int:
        return self.model.lookahead_ms

    @property
    def latency_ms(self) -> int:
        """Algorithmic latency of the first frame of a block: the block plus the look-ahead."""
        return self.params.block_frames * 1000 // audio.FPS + self.lookahead_ms

    def set_scales(self, dynamic_scale: float | None = None, motion_scale: float | None = None) -> None:
        """Change the motion amplitudes from the next generated frame on (a live slider); the
        model's tail is unscaled, so nothing already generated changes and no jump is fed back."""
        changes = {k: v for k, v in (("dynamic_scale", dynamic_scale), ("motion_scale", motion_scale)) if v is not None}
        self.params = dataclasses.replace(self.params, **changes)  # checks the ranges
        self._scale = _scales(self.params)

    def push(self, mel: np.ndarray, phones: np.ndarray) -> np.ndarray:
        """Add raw log-mel frames ``(k, N_MELS)`` and phonetic rows ``(j, FEATURES)`` (each stream
        in order; they may arrive at different times); returns the motion frames now complete ``(m, DIM)``."""
        mel = np.asarray(mel, dtype=np.float32).reshape(-1, audio.N_MELS)
        phones = np.asarray(phones, dtype=np.float32).reshape(-1, FEATURES)
        self._mel = np.concatenate([self._mel, mel])
        self._mel_count += len(mel)
        self._ph = np.concatenate([self._ph, phones])
        self._ph_count += len(phones)
        self._embed_ready()
        return self._generate(final=False)

    def finish(self, total_frames: int | None = None) -> np.ndarray:
        """End of the audio: generate every remaining frame (``total_frames`` in all, default
        every frame the audio reached), the look-ahead filled with silence."""
        if total_frames is None:
            total_frames = -(-self._mel_count // audio.MELS_PER_FRAME)
        end = (total_frames + 1) * audio.MELS_PER_FRAME  # rows every frame's context needs, and more
        pad = max(0, end + self._future - self._mel_count)
        self._mel = np.concatenate([self._mel, np.full((pad, audio.N_MELS), SILENCE_LOG_MEL, np.float32)])
        self._mel_count += pad
        pad = max(0, end + self._ph_future - self._ph_count)
        self._ph = np.concatenate([self._ph, rest_rows(pad)])
        self._ph_count += pad
        self._embed_ready(limit=total_frames)
        return self._generate(final=True)

    def interrupt(self) -> None:
        """Barge-in: forget every audio frame not yet turned into motion. The motion generated so
        far stays as the tail, so the next frame continues it (from silence, towards rest)."""
        self._pending = []
        self._embedded = self.frames_out
        self._mel_count = self.frames_out * audio.MELS_PER_FRAME
        self._mel = np.full((self._past, audio.N_MELS), SILENCE_LOG_MEL, np.float32)
        self._mel_base = self._mel_count - self._past
        self._ph_count = self._mel_count
        self._ph = rest_rows(self._ph_past)
        self._ph_base = self._ph_count - self._ph_past

    def _embed_ready(self, limit: int | None = None) -> None:
        span, ph_span = self.model.mel_span, self.model.phone_span
        ready = min(  # frames whose context is complete in both streams
            (self._mel_count - self._future) // audio.MELS_PER_FRAME,
            (self._ph_count - self._ph_future) // audio.MELS_PER_FRAME,
        )
        if limit is not None:
            ready = min(ready, limit)
        if ready <= self._embedded:
            return
        frames = np.arange(self._embedded, ready) * audio.MELS_PER_FRAME
        mel = np.stack([self._mel[s : s + span] for s in frames - self._past - self._mel_base])
        phones = np.stack([self._ph[s : s + ph_span] for s in frames - self._ph_past - self._ph_base])
        self._pending.extend(self.runner.embed(torch.from_numpy(mel), torch.from_numpy(phones)))
        self._embedded = ready
        first = self._embedded * audio.MELS_PER_FRAME
        drop = first - self._past - self._mel_base
        if drop > 0:
            self._mel = self._mel[drop:]
            self._mel_base += drop
        drop = first - self._ph_past - self._ph_base
        if drop > 0:
            self._ph = self._ph[drop:]
            self._ph_base += drop

    def _generate(self, final: bool) -> np.ndarray:
        block = self.params.block_frames
        out = []
        while len(self._pending) >= block or (final and self._pending):
            b = min(block, len(self._pending))
            embs, self._pending = self._pending[:b], self._pending[b:]
            out.append(self._generate_block(embs))
        return np.concatenate(out) if out else vector.neutral(0)

    def _generate_block(self, embs: list[torch.Tensor]) -> np.ndarray:
        window = self.model.config.window
        b = len(embs)
        tail = list(self._tail)[-(window - b) :]
        known = torch.stack([m for m, _ in tail] + [torch.zeros(vector.DIM)] * b)[None]
        mask = torch.zeros(1, window, 1)
        mask[:, : window - b] = 1.0
        audio_emb = torch.stack([e for _, e in tail] + embs)[None]
        noise = torch.randn((1, window, self.model.config.motion_dim), generator=self._generator)
        steps, guidance = self.params.inference_steps, self.params.guidance
        x = self.runner.sample(audio_emb, known, mask, noise, steps, guidance)[0, window - b :]
        for m, e in zip(x, embs, strict=True):
            self._tail.append((m, e))
        with torch.inference_mode():
            raw = self.model.denormalise(x).numpy()
        raw[:, self._silent] = 0.0
        raw[:, vector.INDEX["jaw_open"]] = np.maximum(raw[:, vector.INDEX["jaw_open"]], 0.0)
        self.frames_out += b
        return vector.clip((self._smooth(raw) + self._idle.next(b)) * self._scale)
