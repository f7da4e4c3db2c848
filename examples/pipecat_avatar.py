"""A pipecat pipeline with a sonic-rt avatar, offline: text -> espeak-ng -> the talking face -> an MP4.

    python examples/pipecat_avatar.py -o avatar.mp4 --say "Hello! I am a talking portrait." --say "Goodbye."

The pipeline is the one a voice agent has after its LLM: a TTS (here sonic-rt's embedded
espeak-ng, ``EspeakTTSService``, which also hands the avatar its phonemes), the avatar service
(``SonicRTVideoService``: the face from the first frame, speaking each utterance as it comes),
and an output transport. Here the transport writes the call to a file, paced as a live one
(``Mp4OutputTransport``); the face idles a second before, between and after the sentences.
``--url ws://HOST:PORT/v1/stream --api-key KEY`` animates on a ``sonic-rt serve`` instead of here.

For a real call, replace the MP4 transport with your transport's output, video on and live at
the session's frame rate, e.g. pipecat's SmallWebRTC or Daily transport with
``TransportParams(audio_out_enabled=True, video_out_enabled=True, video_out_is_live=True,
video_out_width=512, video_out_height=512, video_out_framerate=25)``, and put the avatar after
your TTS: ``Pipeline([transport.input(), stt, user_aggregator, llm, tts, avatar, transport.output(),
assistant_aggregator])``. Interruptions (``InterruptionFrame``) reach the avatar as they reach the TTS.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from pipecat.frames.frames import EndFrame, TTSSpeakFrame, TTSStoppedFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.workers.runner import WorkerRunner

from integrations.pipecat import SonicRTVideoService
from integrations.pipecat_mp4 import Mp4OutputTransport
from integrations.pipecat_tts import EspeakTTSService
from sonic_rt.config import GeometryParams

IDLE_S = 1.0  # the face idling before, between and after the sentences
TURN_TIMEOUT_S = 60.0


class TurnsDone(BaseObserver):
    """Counts the turns the avatar has finished speaking (its ``TTSStoppedFrame``s)."""

    def __init__(self, avatar) -> None:
        super().__init__()
        self.avatar, self.done = avatar, 0

    async def on_push_frame(self, data: FramePushed) -> None:
        if data.source is self.avatar and isinstance(data.frame, TTSStoppedFrame):
            self.done += 1


async def main(args: argparse.Namespace) -> None:
    avatar = SonicRTVideoService(portrait=args.portrait, params={"seed": args.seed}, url=args.url,
                                 api_key=args.api_key, geometry=GeometryParams(min_resolution=args.size),
                                 agent="pipecat example")  # fmt: skip
    output = Mp4OutputTransport(args.output, args.size if args.url is None else 512, keep=False)
    turns = TurnsDone(avatar)
    worker = PipelineWorker(Pipeline([EspeakTTSService(voice=args.voice), avatar, output]),
                            params=PipelineParams(enable_metrics=True), cancel_on_idle_timeout=False,
                            observers=[turns])  # fmt: skip

    async def speak() -> None:
        deadline = time.monotonic() + TURN_TIMEOUT_S
        while output.frames_written == 0 and time.monotonic() < deadline:  # the face is up
            await asyncio.sleep(0.05)
        for i, text in enumerate(args.say):
            await asyncio.sleep(IDLE_S)
            await worker.queue_frame(TTSSpeakFrame(text))
            deadline = time.monotonic() + TURN_TIMEOUT_S
            while turns.done <= i and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        await asyncio.sleep(IDLE_S)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), speak())
    print(f"wrote {args.output}: {output.frames_written} frames ({output.frames_written / 25:.2f} s), "
          f"{turns.done} of {len(args.say)} sentences spoken, watermark {avatar.driver.watermark:08x}; "
          f"latency per frame: {avatar.driver.latency.summary()}")  # fmt: skip


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="pipecat_avatar.mp4")
    ap.add_argument("--say", action="append", help="a sentence to speak (repeatable)")
    ap.add_argument("--voice", default="en-us")
    ap.add_argument("--portrait", default="sample:astronaut")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=512, help="frame side in pixels (in this process)")
    ap.add_argument("--url", help="a sonic-rt server's ws://HOST:PORT/v1/stream (default: animate here)")
    ap.add_argument("--api-key")
    args = ap.parse_args()
    args.say = args.say or ["Hello! I am a talking portrait, animated on a CPU.", "Nice to meet you."]
    asyncio.run(main(args))
