"""sonic-rt's embedded text-to-speech (espeak-ng, ``sonic_rt.audio.tts``) as a pipecat TTS service.

``EspeakTTSService`` speaks each text with espeak-ng, offline, at the pipeline's output rate, in
``chunk_ms`` pieces. espeak says which phoneme it speaks when, so the first chunk of each
utterance carries them all in its ``metadata["sonic_rt.timings"]`` (espeak mnemonics, times from
that chunk's first sample), which ``SonicRTVideoService`` passes on to the session: the mouth
follows what espeak says rather than what is recognised from the sound.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import numpy as np
from pipecat.audio.utils import create_file_resampler
from pipecat.frames.frames import ErrorFrame, Frame, TTSAudioRawFrame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from sonic_rt.audio import SAMPLE_RATE, tts
from sonic_rt.errors import SonicError

from .driver import TIMINGS_KEY
from .espeak import espeak_timings

CHUNK_MS = 40


class EspeakTTSService(TTSService):
    """Offline speech for a pipecat pipeline, with its phoneme timings for a sonic-rt avatar."""

    def __init__(self, *, voice: str = "en-us", chunk_ms: int = CHUNK_MS, **kwargs) -> None:
        """``voice``: an espeak-ng voice (``en-us``, ``en-gb``, ``cmn``, ``en-us+f3``, ...)."""
        settings = TTSSettings(model=None, voice=voice, language=None)
        super().__init__(push_start_frame=True, push_stop_frames=True, settings=settings, **kwargs)
        if not 10 <= chunk_ms <= 1000:
            raise ValueError(f"chunk_ms must be 10-1000, got {chunk_ms}")
        self._chunk_ms = chunk_ms
        self._resampler = create_file_resampler()

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        try:
            speech = await asyncio.to_thread(tts.synthesize, text, self._settings.voice)
        except SonicError as err:
            yield ErrorFrame(error=f"espeak-ng: [{err.code}] {err}")
            return
        await self.start_tts_usage_metrics(text)
        pcm = np.round(np.clip(speech.audio, -1, 1) * 32767).astype(np.int16).tobytes()
        audio = await self._resampler.resample(pcm, SAMPLE_RATE, self.sample_rate)
        step = self.sample_rate * self._chunk_ms // 1000 * 2
        for i, start in enumerate(range(0, len(audio), step)):
            frame = TTSAudioRawFrame(audio[start : start + step], self.sample_rate, 1, context_id=context_id)
            if i == 0:
                frame.metadata[TIMINGS_KEY] = espeak_timings(speech)
            yield frame
