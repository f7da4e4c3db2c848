"""ComfyUI custom nodes: Sonic's two-node workflow on sonic-rt's generator, and a speak node.

``SonicRTPreData`` takes an IMAGE and an AUDIO with Sonic's pre-data parameters
(``min_resolution``, ``duration``, ``expand_ratio``) and enrols the portrait; ``SonicRTSampler``
takes that data with the sampling parameters (``seed``, ``inference_steps``, ``dynamic_scale``,
``motion_scale``, ``lip_sync_offset_ms``, ``smoothing``, ``fps``, ``block_frames``; ``label`` and
``watermark`` for the marks every frame carries) and returns the frames as an IMAGE batch, the
matching AUDIO, the frame rate and the watermark payload, ready for CreateVideo → SaveVideo. The
frames come from the same ``sonic_rt.offline.Job`` as ``sonic-rt generate`` and
``sonic_rt.generate``. ``SonicRTSpeak`` speaks text with the embedded espeak-ng voice; its AUDIO
carries espeak's phonemes, which the pre-data node hands on, so the mouth follows them exactly
(as ``sonic-rt generate --say`` does) instead of a phone recogniser's guess.

ComfyUI's conventions: ``INPUT_TYPES``/``RETURN_TYPES``/``RETURN_NAMES``/``OUTPUT_TOOLTIPS``/
``FUNCTION``/``CATEGORY``/``DESCRIPTION`` on each class, a tooltip on every input,
``NODE_CLASS_MAPPINGS`` to register them, IMAGE as a ``(B, H, W, C)`` float32 tensor in [0, 1],
AUDIO as ``{"waveform": (B, C, T) float tensor, "sample_rate": int}``; ``IS_CHANGED`` where an
output must be made afresh (a random watermark). Nothing here imports ComfyUI, so the nodes can be
used and tested without it: its progress bar and its interrupt check are looked up among the
modules already loaded, and used when ComfyUI runs the node. The custom-node package is the
repository's ``comfyui_sonic_rt`` folder.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

import numpy as np
import torch

from . import audio
from .audio import timings, tts
from .audio.decode import ChunkResampler
from .audio.tts import Speech
from .config import (
    BLOCK_FRAMES_RANGE,
    EXPAND_RATIO_RANGE,
    FPS_RANGE,
    INFERENCE_STEPS_RANGE,
    LIP_SYNC_OFFSET_MS,
    LIP_SYNC_OFFSET_RANGE_MS,
    MIN_RESOLUTION_RANGE,
    OFFLINE_BLOCK_FRAMES,
    SCALE_RANGE,
    SEED_RANGE,
    SMOOTHING_RANGE,
    GeometryParams,
    MotionParams,
    VideoParams,
)
from .errors import BadAudioChunk, ConsentRequired
from .offline import MAX_DURATION_S, AudioSource, JobParams, Timed, load_portrait, prepare
from .provenance.marks import Marks
from .render.identity import Identity

CATEGORY = "sonic-rt"
DATA_TYPE = "SONIC_RT_DATA"
# An AUDIO made by SonicRTSpeak carries its Speech (audio + espeak's phonemes) under this key. Other
# nodes pass the dict on or build a new one; the phonemes are used only while the waveform is
# still exactly the speech's.
SPEECH_KEY = "sonic_rt_speech"
WATERMARK_RANGE = (0, 2**32 - 1)  # the invisible watermark's 32-bit payload
RANDOM_WATERMARK = -1


@dataclass(frozen=True)
class PreData:
    """What the pre-data node hands on: the enrolled portrait and the 16 kHz audio (``speech``:
    the same audio as spoken by the embedded TTS, with its phonemes, when it came from SonicRTSpeak)."""

    identity: Identity
    samples: np.ndarray
    duration: float | None
    pad: bool
    trim: bool
    allow_silence: bool
    speech: Speech | None = None

    @property
    def source(self) -> AudioSource:
        """What the offline job reads: the speech (its phonemes are the phonetic track) or the samples."""
        return self.speech if self.speech is not None else self.samples


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
    resampler = ChunkResampler(rate, pcm.shape[1])
    return np.concatenate([resampler.push(np.ascontiguousarray(pcm, dtype=np.float32)), resampler.flush()])


def speech_of(audio_in: dict, samples: np.ndarray) -> Speech | None:
    """The Speech an AUDIO from SonicRTSpeak carries, if its waveform (as 16 kHz ``samples``) is still
    exactly that speech; else None (another node changed the sound: its phonemes no longer fit)."""
    speech = audio_in.get(SPEECH_KEY) if isinstance(audio_in, dict) else None
    if isinstance(speech, Speech) and np.array_equal(speech.audio, samples):
        return speech
    return None


class SonicRTSpeak:
    """Text + voice -> AUDIO through the embedded espeak-ng text-to-speech, phonemes included."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("speech",)
    OUTPUT_TOOLTIPS = ("the spoken text as 16 kHz mono AUDIO; connected to sonic-rt pre-data, espeak-ng's own "
                       "phonemes travel with it and the mouth follows them exactly",)  # fmt: skip
    FUNCTION = "speak"
    DESCRIPTION = ("Speaks text with the embedded espeak-ng voice, so a workflow makes a talking video from text "
                   "alone; the phonemes go with the sound to the sampler.")  # fmt: skip

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "text": ("STRING", {"default": "Hello! I am a talking portrait, animated on a CPU.", "multiline": True,
                                    "tooltip": "what the portrait says (UTF-8; Chinese characters with a cmn voice)"}),
                "voice": ("STRING", {"default": "en-us", "tooltip": 'an espeak-ng language code ("en-us", "en-gb", '
                                     '"de", "cmn"), optionally with a speaker variant: "en-us+f3", "cmn+m2"'}),
                "rate": ("INT", {"default": 175, "min": tts.RATE_RANGE[0], "max": tts.RATE_RANGE[1],
                                 "tooltip": "speaking rate in words per minute"}),
                "pitch": ("INT", {"default": 50, "min": tts.PITCH_RANGE[0], "max": tts.PITCH_RANGE[1],
                                  "tooltip": "voice pitch, 0-100; 50 is the voice's own"}),
            },
        }  # fmt: skip

    def speak(self, text, voice, rate=175, pitch=50):
        speech = tts.synthesize(str(text), str(voice), int(rate), int(pitch))
        waveform = torch.from_numpy(speech.audio.copy())[None, None]  # (1, 1, T)
        return ({"waveform": waveform, "sample_rate": speech.sample_rate, SPEECH_KEY: speech},)


class SonicRTPreData:
    """Portrait + audio + Sonic's pre-data parameters -> data for the sampler."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (DATA_TYPE,)
    RETURN_NAMES = ("portrait_and_audio",)
    OUTPUT_TOOLTIPS = ("the enrolled portrait (face, crop, identity cache) and the checked audio, for sonic-rt "
                       "sampler",)  # fmt: skip
    FUNCTION = "prepare"
    DESCRIPTION = ("Enrols the portrait (face, crop, identity cache) and reads the audio; bad input (no face, "
                   "silent audio, a duration that does not fit the audio) fails here, before any frame is "
                   "made.")  # fmt: skip

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        geometry = GeometryParams()
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "the portrait: one photo with one face, looking roughly at the camera"}),
                "audio": ("AUDIO", {"tooltip": "the speech (any rate, any channels; read as 16 kHz mono)"}),
                "min_resolution": ("INT", {"default": geometry.min_resolution, "min": MIN_RESOLUTION_RANGE[0],
                                           "max": MIN_RESOLUTION_RANGE[1], "step": 2,
                                           "tooltip": "the output video's side in pixels (even)"}),
                "duration": ("FLOAT", {"default": 0.0, "min": 0.0, "max": MAX_DURATION_S, "step": 0.1,
                                       "tooltip": "seconds of video; 0 = the audio's length. Another length needs "
                                                  "pad or trim"}),
                "expand_ratio": ("FLOAT", {"default": geometry.expand_ratio, "min": EXPAND_RATIO_RANGE[0],
                                           "max": EXPAND_RATIO_RANGE[1], "step": 0.05,
                                           "tooltip": "margin around the detected face for the crop, as a fraction "
                                                      "of the face's size (0.15-0.2 for a tight crop)"}),
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
                       bool(trim), bool(allow_silence), speech_of(audio, samples))  # fmt: skip
        prepare(data.identity, data.source, _job_params(data))  # bad input fails here, not in the sampler
        return (data,)


class SonicRTSampler:
    """Data + Sonic's sampling parameters -> frames (IMAGE), the matching AUDIO, the frame rate and
    the watermark payload."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT", "INT")
    RETURN_NAMES = ("frames", "audio", "fps", "watermark")
    OUTPUT_TOOLTIPS = (
        "the video's frames, (frames, height, width, 3)",
        "the sound that goes with the frames, exactly the video's length",
        "frames per second, for CreateVideo's fps",
        "the 32-bit payload of the invisible watermark every frame carries (sonic-rt detect reads it back)",
    )
    FUNCTION = "sample"
    DESCRIPTION = ("Generates the talking video: motion diffusion from the audio, rendered from the portrait, "
                   "watermarked. Interrupting the queue stops it within a few frames.")  # fmt: skip

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        motion, video = MotionParams(), VideoParams()
        return {
            "required": {
                "portrait_and_audio": (DATA_TYPE, {"tooltip": "from sonic-rt pre-data"}),
                "seed": ("INT", {"default": motion.seed, "min": SEED_RANGE[0], "max": SEED_RANGE[1],
                                 "control_after_generate": True,
                                 "tooltip": "makes the stochastic parts (diffusion noise, blinks) reproducible"}),
                "inference_steps": ("INT", {"default": motion.inference_steps, "min": INFERENCE_STEPS_RANGE[0],
                                            "max": INFERENCE_STEPS_RANGE[1],
                                            "tooltip": "denoising steps of the motion diffusion per block (2-8 "
                                                       "is typical; more costs time)"}),
                "dynamic_scale": ("FLOAT", {"default": motion.dynamic_scale, "min": SCALE_RANGE[0],
                                            "max": SCALE_RANGE[1], "step": 0.05,
                                            "tooltip": "amplitude of mouth and lip motion"}),
                "motion_scale": ("FLOAT", {"default": motion.motion_scale, "min": SCALE_RANGE[0],
                                           "max": SCALE_RANGE[1], "step": 0.05,
                                           "tooltip": "amplitude of head and expression motion"}),
                "fps": ("INT", {"default": video.fps, "min": FPS_RANGE[0], "max": FPS_RANGE[1],
                                "tooltip": "output frames per second (the motion model runs at 25; other rates "
                                           "are interpolated)"}),
            },
            "optional": {
                "lip_sync_offset_ms": ("FLOAT", {"default": LIP_SYNC_OFFSET_MS, "min": LIP_SYNC_OFFSET_RANGE_MS[0],
                                                 "max": LIP_SYNC_OFFSET_RANGE_MS[1], "step": 10.0,
                                                 "tooltip": "lip-sync calibration: shifts the mouth against the "
                                                            "sound, positive later; the default corrects the "
                                                            "model's measured lag, 0 turns it off"}),
                "smoothing": ("FLOAT", {"default": motion.smoothing, "min": SMOOTHING_RANGE[0],
                                        "max": SMOOTHING_RANGE[1], "step": 0.1,
                                        "tooltip": "strength of the motion smoothing: 0 off, 1 default, 2 twice "
                                                   "as smooth"}),
                "block_frames": ("INT", {"default": OFFLINE_BLOCK_FRAMES, "min": BLOCK_FRAMES_RANGE[0],
                                         "max": BLOCK_FRAMES_RANGE[1],
                                         "tooltip": f"frames generated per model call: {MotionParams.block_frames} "
                                                    f"is the live server's (the motion a live session shows), "
                                                    f"{OFFLINE_BLOCK_FRAMES} the offline default (cheaper)"}),
                "label": ("BOOLEAN", {"default": False, "tooltip": 'draw a visible "AI-generated" label'}),
                "watermark": ("INT", {"default": RANDOM_WATERMARK, "min": RANDOM_WATERMARK,
                                      "max": WATERMARK_RANGE[1],
                                      "tooltip": "the invisible watermark's 32-bit payload; -1: a fresh random one "
                                                 "each run (the node then runs again every time it is queued)"}),
                "phonemes": ("STRING", {"default": "", "multiline": True,
                                        "tooltip": "the audio's phoneme or viseme timings from the TTS that spoke "
                                                   "it, as JSON (IPA, ARPAbet, espeak, Polly speech marks, Azure "
                                                   "viseme events: see the README); empty: recognised from the "
                                                   "audio"}),
            },
        }  # fmt: skip

    @classmethod
    def IS_CHANGED(cls, watermark=RANDOM_WATERMARK, **_):
        """ComfyUI reuses a node's cached output while its inputs and this value are unchanged. A fixed
        payload gives the same frames, so they may be reused; -1 asks for a fresh random payload, so
        the node runs again each time (NaN equals nothing, not even itself). A ``watermark`` fed from
        another node is not seen here (ComfyUI passes only widget values), which also runs afresh."""
        return float("nan") if int(watermark) < 0 else int(watermark)

    def sample(self, portrait_and_audio: PreData, seed, inference_steps, dynamic_scale, motion_scale, fps,
               lip_sync_offset_ms=LIP_SYNC_OFFSET_MS, smoothing=MotionParams.smoothing,
               block_frames=OFFLINE_BLOCK_FRAMES, label=False, watermark=RANDOM_WATERMARK, phonemes=""):  # fmt: skip
        data = portrait_and_audio
        params = _job_params(data, seed=int(seed), inference_steps=int(inference_steps),
                             dynamic_scale=float(dynamic_scale), motion_scale=float(motion_scale), fps=int(fps),
                             lip_sync_offset_ms=float(lip_sync_offset_ms), smoothing=float(smoothing),
                             block_frames=int(block_frames))  # fmt: skip
        marks = Marks(label=bool(label)) if int(watermark) < 0 else Marks(int(watermark), bool(label))
        source = data.source
        if phonemes and phonemes.strip():  # BadTimings for timings that cannot be read or do not fit the audio
            source = Timed(data.samples, timings.loads(phonemes))
        job = prepare(data.identity, source, params, marks)
        size = job.identity.out_size
        images = torch.empty((job.frames, size, size, 3), dtype=torch.float32)
        sound = np.zeros(job.audio_out, np.float32)
        progress = _progress_bar(job.frames)
        check_interrupt = _comfy("comfy.model_management", "throw_exception_if_processing_interrupted")
        done = heard = 0
        for chunk in job.chunks():  # 200 ms of audio, about 5 frames, at a time
            if check_interrupt is not None:
                check_interrupt()  # raises ComfyUI's InterruptProcessingException after an interrupt
            sound[heard : heard + len(chunk.audio)] = chunk.audio
            heard += len(chunk.audio)
            for frame in chunk.frames:
                images[frame.index] = torch.from_numpy(frame.image).float().div_(255.0)
            done += len(chunk.frames)
            if progress is not None:
                progress.update_absolute(done, job.frames)
        out_audio = {"waveform": torch.from_numpy(sound)[None, None], "sample_rate": audio.SAMPLE_RATE}
        return (images, out_audio, float(job.fps), marks.watermark)


def _job_params(data: PreData, **sampling) -> JobParams:
    """The offline job's parameters: the portrait's own geometry, the pre-data choices, ``sampling``."""
    return JobParams.from_flat(**dataclasses.asdict(data.identity.params), duration=data.duration, pad=data.pad,
                               trim=data.trim, allow_silence=data.allow_silence, **sampling)  # fmt: skip


def _comfy(module: str, name: str):
    """``name`` from ComfyUI's ``module`` when this runs inside ComfyUI, else ``None``. Looked up among
    the modules already loaded, never imported: ComfyUI has loaded them before any node runs, and
    importing ``comfy`` elsewhere would parse that process's command line and probe its devices."""
    return getattr(sys.modules.get(module), name, None)


def _progress_bar(total: int):
    """ComfyUI's own progress bar (progress messages on its /ws socket) when inside ComfyUI, else ``None``."""
    progress_bar = _comfy("comfy.utils", "ProgressBar")
    return None if progress_bar is None else progress_bar(total)


NODE_CLASS_MAPPINGS = {"SonicRTPreData": SonicRTPreData, "SonicRTSampler": SonicRTSampler, "SonicRTSpeak": SonicRTSpeak}
NODE_DISPLAY_NAME_MAPPINGS = {"SonicRTPreData": "sonic-rt pre-data", "SonicRTSampler": "sonic-rt sampler",
                              "SonicRTSpeak": "sonic-rt speak"}  # fmt: skip
