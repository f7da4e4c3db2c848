"""sonic-rt's embedded text-to-speech (espeak-ng, ``sonic_rt.audio.tts``) as a LiveKit Agents TTS.

``EspeakTTS`` is a non-streaming ``livekit.agents.tts.TTS`` (the framework wraps it in its
``StreamAdapter`` for an ``AgentSession``, sentence by sentence): each text is spoken offline at
16 kHz — the rate ``SonicRTAudioOutput`` takes, so the agent does not resample — with espeak's
word timings as LiveKit's aligned transcript (``TimedString``), which the agent's transcript
synchroniser uses to keep the captions with the voice.
"""

from __future__ import annotations

import asyncio

import numpy as np
from livekit.agents import APIConnectOptions, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, TimedString

from sonic_rt.audio import SAMPLE_RATE
from sonic_rt.audio import tts as espeak


class EspeakTTS(tts.TTS):
    """Offline speech for a LiveKit agent."""

    def __init__(self, *, voice: str = "en-us") -> None:
        """``voice``: an espeak-ng voice (``en-us``, ``en-gb``, ``cmn``, ``en-us+f3``, ...)."""
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False, aligned_transcript=True),
                         sample_rate=SAMPLE_RATE, num_channels=1)  # fmt: skip
        self.voice = voice

    @property
    def model(self) -> str:
        return "espeak-ng"

    @property
    def provider(self) -> str:
        return "sonic-rt"

    def synthesize(self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS) -> _Chunked:
        return _Chunked(tts=self, input_text=text, conn_options=conn_options)


class _Chunked(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        speech = await asyncio.to_thread(espeak.synthesize, self.input_text, self._tts.voice)
        output_emitter.initialize(request_id=utils.shortuuid(), sample_rate=SAMPLE_RATE, num_channels=1,
                                  mime_type="audio/pcm")  # fmt: skip
        output_emitter.push_timed_transcript(
            [TimedString(f"{w.text} ", start_time=w.start, end_time=w.end) for w in speech.words]
        )
        output_emitter.push(np.round(np.clip(speech.audio, -1, 1) * 32767).astype(np.int16).tobytes())
        output_emitter.flush()
