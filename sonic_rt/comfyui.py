"""ComfyUI custom nodes: Sonic's two-node workflow on sonic-rt's generator.

``SonicRTPreData`` takes an IMAGE and an AUDIO with Sonic's pre-data parameters
(``min_resolution``, ``duration``, ``expand_ratio``) and enrols the portrait; ``SonicRTSampler``
takes that data with the sampling parameters (``seed``, ``inference_steps``, ``dynamic_scale``,
``motion_scale``, ``lip_sync_offset_ms``, ``smoothing``, ``fps``; ``label`` and ``watermark``
for the marks every frame carries) and returns the frames as an IMAGE batch, the matching AUDIO
and the frame rate, ready for a video-combine node. The frames
come from the same ``sonic_rt.offline.Job`` as ``sonic-rt generate`` and ``sonic_rt.generate``.

ComfyUI's conventions: ``INPUT_TYPES``/``RETURN_TYPES``/``FUNCTION``/``CATEGORY`` on each class,
``NODE_CLASS_MAPPINGS`` to register them, IMAGE as a ``(B, H, W, C)`` float32 tensor in [0, 1],
AUDIO as ``{"waveform": (B, C, T) float tensor, "sample_rate": int}``. Nothing here imports
ComfyUI, so the nodes can be used and tested without it; install by copying or linking the
repository's ``comfyui_sonic_rt`` folder into ``ComfyUI/custom_nodes``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from . import audio
from .config import (
    EXPAND_RATIO_RANGE,
    FPS_RANGE,
    INFERENCE_STEPS_RANGE,
    LIP_SYNC_OFFSET_MS,
    LIP_SYNC_OFFSET_RANGE_MS,
    MIN_RESOLUTION_RANGE,
    SCALE_RANGE,
    SMOOTHING_RANGE,
    GeometryParams,
    MotionParams,
    VideoParams,
)
from .errors import BadAudioChunk, ConsentRequired
from .identity import Identity
from .marks import Marks
from .offline import JobParams, load_portrait, prepare

CATEGORY = "sonic-rt"
DATA_TYPE = "SONIC_RT_DATA"


@dataclass(frozen=True)
class PreData:
    """What the pre-data node hands on: the enrolled portrait and the 16 kHz audio."""

    identity: Identity
    samples: np.ndarray
    duration: float | None
    pad: bool
    trim: bool
    allow_silence: bool


def image_to_rgb(image: torch.Tensor) -> np.ndarray:
    """The first image of a ComfyUI IMAGE batch as ``(H, W, 3)`` uint8 RGB."""
    if image.ndim != 4 or image.shape[-1] not in (3, 4):
        raise ValueError(f"expected an IMAGE tensor (B, H, W, 3), got shape {tuple(image.shape)}")
    rgb = image[0, ..., :3].detach().cpu().float().numpy()
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def audio_to_samples(audio_in: dict) -> np.ndarray:
    """A ComfyUI AUDIO (first item of the batch, any rate and channel count) as 16 kHz mono float32."""
    try:
        waveform, rate = audio_in["waveform"], int(audio_in["sample_rate"])
    except (KeyError, TypeError) as err:
        raise BadAudioChunk("expected an AUDIO input: {'waveform': (B, C, T) tensor, 'sample_rate': int}") from err
    if waveform.ndim != 3:
        raise BadAudioChunk(f"expected an AUDIO waveform (B, C, T), got shape {tuple(waveform.shape)}")
    pcm = waveform[0].detach().cpu().float().numpy().T  # (T, C)
    resampler = audio.ChunkResampler(rate, pcm.shape[1])
    return np.concatenate([resampler.push(np.ascontiguousarray(pcm, dtype=np.float32)), resampler.flush()])


class SonicRTPreData:
    """Portrait + audio + Sonic's pre-data parameters -> data for the sampler."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (DATA_TYPE,)
    RETURN_NAMES = ("data",)
    FUNCTION = "prepare"
    DESCRIPTION = "Enrols the portrait (face, crop, identity cache) and reads the audio."

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        geometry = GeometryParams()
        return {
            "required": {
                "image": ("IMAGE",),
                "audio": ("AUDIO",),
                "min_resolution": ("INT", {"default": geometry.min_resolution, "min": MIN_RESOLUTION_RANGE[0],
                                           "max": MIN_RESOLUTION_RANGE[1], "step": 2}),
                "duration": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 86400.0, "step": 0.1,
                                       "tooltip": "seconds of video; 0 = the audio's length"}),
                "expand_ratio": ("FLOAT", {"default": geometry.expand_ratio, "min": EXPAND_RATIO_RANGE[0],
                                           "max": EXPAND_RATIO_RANGE[1], "step": 0.05}),
                "consent": ("BOOLEAN", {"default": False, "tooltip": "I may use this face and the person shown "
                                                                     "agreed to it being animated (required)"}),
            },
            "optional": {
                "pad": ("BOOLEAN", {"default": False, "tooltip": "a duration longer than the audio idles"}),
                "trim": ("BOOLEAN", {"default": False, "tooltip": "a duration shorter than the audio cuts it"}),
                "allow_silence": ("BOOLEAN", {"default": False, "tooltip": "accept silent audio (the face idles)"}),
            },
        }  # fmt: skip

    def prepare(self, image, audio, min_resolution, duration, expand_ratio, consent=False, pad=False, trim=False,
                allow_silence=False):  # fmt: skip
        if not consent:
            raise ConsentRequired("a portrait is only animated with consent: set consent to true to confirm that "
                                  "you may use this face and that the person shown agreed to it being animated")
        geometry = GeometryParams(expand_ratio=float(expand_ratio), min_resolution=int(min_resolution))
        samples = audio_to_samples(audio)
        data = PreData(load_portrait(image_to_rgb(image), geometry), samples, float(duration) or None, bool(pad),
                       bool(trim), bool(allow_silence))  # fmt: skip
        prepare(data.identity, samples, _job_params(data))  # bad input fails here, not in the sampler
        return (data,)


class SonicRTSampler:
    """Data + Sonic's sampling parameters -> frames (IMAGE), the matching AUDIO and the frame rate."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT")
    RETURN_NAMES = ("images", "audio", "fps")
    FUNCTION = "sample"
    DESCRIPTION = "Generates the talking video: motion diffusion from the audio, rendered from the portrait."

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        motion, video = MotionParams(), VideoParams()
        return {
            "required": {
                "data": (DATA_TYPE,),
                "seed": ("INT", {"default": motion.seed, "min": 0, "max": 2**63 - 1}),
                "inference_steps": ("INT", {"default": motion.inference_steps, "min": INFERENCE_STEPS_RANGE[0],
                                            "max": INFERENCE_STEPS_RANGE[1]}),
                "dynamic_scale": ("FLOAT", {"default": motion.dynamic_scale, "min": SCALE_RANGE[0],
                                            "max": SCALE_RANGE[1], "step": 0.05}),
                "motion_scale": ("FLOAT", {"default": motion.motion_scale, "min": SCALE_RANGE[0],
                                           "max": SCALE_RANGE[1], "step": 0.05}),
                "fps": ("INT", {"default": video.fps, "min": FPS_RANGE[0], "max": FPS_RANGE[1]}),
            },
            "optional": {
                "lip_sync_offset_ms": ("FLOAT", {"default": LIP_SYNC_OFFSET_MS, "min": LIP_SYNC_OFFSET_RANGE_MS[0],
                                                 "max": LIP_SYNC_OFFSET_RANGE_MS[1], "step": 10.0}),
                "smoothing": ("FLOAT", {"default": motion.smoothing, "min": SMOOTHING_RANGE[0],
                                        "max": SMOOTHING_RANGE[1], "step": 0.1}),
                "label": ("BOOLEAN", {"default": False, "tooltip": 'draw a visible "AI-generated" label'}),
                "watermark": ("INT", {"default": -1, "min": -1, "max": 2**32 - 1,
                                      "tooltip": "the invisible watermark's 32-bit payload; -1: a fresh random one"}),
            },
        }  # fmt: skip

    def sample(self, data: PreData, seed, inference_steps, dynamic_scale, motion_scale, fps,
               lip_sync_offset_ms=LIP_SYNC_OFFSET_MS, smoothing=MotionParams.smoothing, label=False,
               watermark=-1):  # fmt: skip
        params = _job_params(data, seed=int(seed), inference_steps=int(inference_steps),
                             dynamic_scale=float(dynamic_scale), motion_scale=float(motion_scale), fps=int(fps),
                             lip_sync_offset_ms=float(lip_sync_offset_ms), smoothing=float(smoothing))  # fmt: skip
        marks = Marks(label=bool(label)) if int(watermark) < 0 else Marks(int(watermark), bool(label))
        job = prepare(data.identity, data.samples, params, marks)
        size = job.identity.out_size
        images = torch.empty((job.frames, size, size, 3), dtype=torch.float32)
        sound = np.zeros(job.audio_out, np.float32)
        progress = _progress_bar(job.frames)
        done = heard = 0
        for chunk in job.chunks():
            sound[heard : heard + len(chunk.audio)] = chunk.audio
            heard += len(chunk.audio)
            for frame in chunk.frames:
                images[frame.index] = torch.from_numpy(frame.image).float().div_(255.0)
            done += len(chunk.frames)
            if progress is not None:
                progress.update_absolute(done, job.frames)
        out_audio = {"waveform": torch.from_numpy(sound)[None, None], "sample_rate": audio.SAMPLE_RATE}
        return (images, out_audio, float(job.fps))


def _job_params(data: PreData, **sampling) -> JobParams:
    """The offline job's parameters: the portrait's own geometry, the pre-data choices, ``sampling``."""
    return JobParams.from_flat(**dataclasses.asdict(data.identity.params), duration=data.duration, pad=data.pad,
                               trim=data.trim, allow_silence=data.allow_silence, **sampling)  # fmt: skip


def _progress_bar(total: int):
    """ComfyUI's own progress bar when running inside ComfyUI, else ``None``."""
    try:
        from comfy.utils import ProgressBar
    except ImportError:
        return None
    return ProgressBar(total)


NODE_CLASS_MAPPINGS = {"SonicRTPreData": SonicRTPreData, "SonicRTSampler": SonicRTSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"SonicRTPreData": "sonic-rt pre-data", "SonicRTSampler": "sonic-rt sampler"}
