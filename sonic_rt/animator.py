"""The one generation core: 16 kHz audio in, rendered frames of one portrait out, as audio arrives.

An ``Animator`` chains the stages every path shares — streaming log-mel
(``sonic_rt.audio.features``) and the phonetic track (``sonic_rt.audio.phonetic``: the phonemes of speech
whose text is known, else the phone recogniser), motion diffusion block by block (``sonic_rt.motion.stream``), the
output clock and lip-sync offset (``sonic_rt.motion.retime``), the fit to the portrait's own mouth
(``sonic_rt.render.retarget``) and the renderer. ``sonic-rt generate`` feeds it from a file; the live
server's sessions feed it from the network. Nothing here knows where the audio comes from.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import audio
from .audio.features import LogMelStream
from .audio.phonetic import PhoneticTrack, rest_rows
from .audio.timings import Mark
from .audio.tts import Phoneme
from .audio.visemes import REST as REST_VISEMES
from .audio.visemes import VisemeTrack, classes_of
from .config import MotionParams, VideoParams
from .motion import vector
from .motion.batch import Runner
from .motion.idle import IdleParams
from .motion.model import MotionDenoiser
from .motion.retime import Retimer
from .motion.stream import MotionStream
from .provenance.marks import Marks
from .render.identity import Identity
from .render.renderer import Renderer
from .render.retarget import to_portrait

STAGES = ("features", "phones", "motion", "render")


@dataclass(frozen=True)
class Frame:
    """Output frame ``index``, shown at ``index / fps`` seconds on the audio timeline.

    ``motion`` is the portrait-relative motion vector it was rendered from ``(DIM,)``;
    ``image`` the ``(S, S, 3)`` uint8 RGB frame (``None`` when the animator does not render);
    ``visemes`` the OVR viseme weights of its phonetic rows ``(len(visemes.NAMES),)``, summing to one.
    """

    index: int
    time: float
    motion: np.ndarray
    image: np.ndarray | None = field(repr=False)
    visemes: np.ndarray | None = field(default=None, repr=False)


class Animator:
    """Streaming audio -> frames for one portrait and one voice. Not thread-safe: one per session.

    ``runner`` makes its model calls (``sonic_rt.motion.batch``; default: a ``DirectRunner`` of its own)."""

    def __init__(
        self,
        identity: Identity,
        model: MotionDenoiser,
        idle: IdleParams,
        motion_params: MotionParams | None = None,
        video_params: VideoParams | None = None,
        render: bool = True,
        marks: Marks | None = None,
        runner: Runner | None = None,
    ) -> None:
        self.motion_params = motion_params or MotionParams()
        self.video_params = video_params or VideoParams()
        self.identity = identity
        self.marks = marks or Marks()  # every frame is watermarked; a fresh payload unless given
        self._renderer = Renderer(identity, self.marks) if render else None
        self._mel = LogMelStream()
        # a model that reads no phones (an ablation) needs no recogniser
        reads_phones = model.config.inputs != "mel"
        self._phones = PhoneticTrack(model.config.phone_delay_ms) if reads_phones else None
        self._motion = MotionStream(model, idle, self.motion_params, runner)
        self._clock = Retimer(self.video_params.fps, self.video_params.lip_sync_offset_ms)
        self._visemes = VisemeTrack()  # the rows the motion model reads, as OVR visemes, on the same clock
        self._viseme_clock = Retimer(self.video_params.fps, self.video_params.lip_sync_offset_ms, REST_VISEMES)
        self._own_gap = identity.own_gap / identity.iod
        self.frames_out = 0
        self._origin = 0  # timeline sample where the audio pushed since the last interrupt starts
        self._since = 0  # samples pushed since then
        self.timings_ms = dict.fromkeys(STAGES, 0.0)

    @property
    def fps(self) -> int:
        return self.video_params.fps

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency: audio that must arrive after a frame's own time before it exists."""
        extra = max(0.0, -self.video_params.lip_sync_offset_ms)
        return self._motion.latency_ms + extra

    @property
    def audio_position(self) -> int:
        """Where the next pushed sample lands on the 16 kHz timeline of the frames (frame ``k``
        covers samples ``k * 16000 / fps`` up to the next frame's); it jumps at an interrupt."""
        return self._origin + self._since

    def push(self, samples: np.ndarray, script: Sequence[Phoneme | Mark] | None = None) -> list[Frame]:
        """Add ``(n,)`` 16 kHz float32 samples; return the frames now complete, in order.

        ``script``: the phonemes spoken in these samples when the text is known (the embedded
        text-to-speech's, or ``Mark``s of a client's timings; times in seconds from the first
        sample); without one the phones are recognised from the audio."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._since += len(samples)
        t0 = time.perf_counter()
        mel = self._mel.push(samples)
        t1 = time.perf_counter()
        phones = self._phones.push(samples, script) if self._phones is not None else rest_rows(len(mel))
        t2 = time.perf_counter()
        model_frames = self._motion.push(mel, phones)
        self._visemes.push(classes_of(phones))
        self._add("features", t1 - t0)
        self._add("phones", t2 - t1)
        self._add("motion", time.perf_counter() - t2)
        visemes = self._viseme_clock.push(self._visemes.frames(len(model_frames)))
        return self._frames(self._clock.push(model_frames), visemes)

    def finish(self, total_frames: int | None = None) -> list[Frame]:
        """End of the audio: every remaining frame, ``total_frames`` in all (default: the audio's
        length, rounded up to whole frames); past the audio the face idles."""
        if total_frames is None:
            total_frames = frames_for_samples(self.audio_position, self.fps)
        t0 = time.perf_counter()
        if self._phones is not None:
            rows = self._phones.finish()
            self._visemes.push(classes_of(rows))
            self._motion.push(np.zeros((0, audio.N_MELS), np.float32), rows)
        t1 = time.perf_counter()
        model_frames = self._motion.finish(self._clock.model_frames_for(total_frames))
        self._add("phones", t1 - t0)
        self._add("motion", time.perf_counter() - t1)
        motion = np.concatenate([self._clock.push(model_frames), self._clock.finish(total_frames)])
        vis = self._viseme_clock.push(self._visemes.frames(len(model_frames)))
        visemes = np.concatenate([vis, self._viseme_clock.finish(total_frames)])
        keep = max(0, total_frames - self.frames_out)
        return self._frames(motion[:keep], visemes[:keep])

    def set_scales(self, dynamic_scale: float | None = None, motion_scale: float | None = None) -> int:
        """Change ``dynamic_scale``/``motion_scale`` mid-stream; returns the first frame they apply to."""
        self._motion.set_scales(dynamic_scale, motion_scale)
        self.motion_params = self._motion.params
        return self._clock.first_output_from(self._motion.frames_out)

    def interrupt(self) -> None:
        """Barge-in: drop the audio still inside the pipeline (the look-ahead and the unfinished
        block). Motion continues from what was generated last, so the face goes to rest without
        a jump; audio pushed from now on lands at ``audio_position``, the first model frame not
        yet generated (frames before it are made from silence)."""
        self._mel.reset()
        if self._phones is not None:
            self._phones.reset()
        self._motion.interrupt()
        self._visemes.reset()
        self._origin = self._motion.frames_out * audio.SAMPLES_PER_FRAME
        self._since = 0

    def _frames(self, motion: np.ndarray, visemes: np.ndarray) -> list[Frame]:
        out = []
        for vec, weights in zip(to_portrait(motion, self._own_gap), visemes, strict=True):
            image = None
            if self._renderer is not None:
                t0 = time.perf_counter()
                image = self._renderer.render(vec)
                self._add("render", time.perf_counter() - t0)
            out.append(Frame(self.frames_out, self.frames_out / self.fps, vec, image, weights))
            self.frames_out += 1
        return out

    def _add(self, stage: str, seconds: float) -> None:
        self.timings_ms[stage] += seconds * 1e3


def rest_image(identity: Identity) -> np.ndarray:
    """The portrait at rest, as a live session shows it in silence (lips closed, looking ahead)."""
    return Renderer(identity).render(to_portrait(vector.neutral(), identity.own_gap / identity.iod))


def frames_for_samples(samples: int, fps: int) -> int:
    """Output frames that cover ``samples`` of 16 kHz audio (rounded up: no audio is left without a frame)."""
    return -(-samples * fps // audio.SAMPLE_RATE)
