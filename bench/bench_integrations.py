"""The latency each avatar adapter adds: pipecat's and LiveKit's, against a plain streaming session.

The same espeak-ng sentences go three ways, one after another in the same run, each into a
fresh session of the same portrait, size and seed: into a plain ``streaming.LiveSession`` (the
baseline: what the WebSocket server drives), through ``SonicRTVideoService`` in a pipecat
pipeline (``TTSAudioRawFrame``s queued to the pipeline, the avatar's speech frames seen by the
processor after it, where a transport would be), and through ``SonicRTAudioOutput`` +
``AvatarRunner`` + ``SonicRTVideoGenerator`` (audio captured as an ``AgentSession`` does, the
generator's audio frames observed as it yields them to the runner). Speech is handed over two
ways: in 20 ms chunks at real-time pace (a streaming TTS, a relayed voice), and each sentence at
once (a TTS faster than real time).

A frame's latency is from when its speech could first have been shown — handed over, and no
earlier than the turn's first audio plus its offset in the turn (speech is not shown faster
than it is spoken) — to the frame going out, read from which second of the speech it shows
(``OutFrame.source``; the adapters' ``sonic_rt.source``). Printed: the median and 95th percentile
over the frames of speech, the mean over each turn's first frame, each as a ratio to the plain
session's in the same run (medians over ``--repeat`` runs; each run's turns start at random phases
of the session's 80 ms blocks, the same for every system).

    python bench/bench_integrations.py [--size 512] [--sentences 3] [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Peter picked a peck of pickled peppers, and Bob moved the blue boat.",
    "We went to buy five fine violins for the wooden box.",
    "Who would have thought that a portrait could talk?",
)
CHUNK = 320  # 20 ms at 16 kHz
GAP_S = 1.0  # idle between turns
SETTLE_S = 1.0  # after the last turn, for its frames to come out
START_S = 0.5  # idle before the first turn
BLOCK_S = 0.08  # the live motion block: 2 frames


class Handed:
    """When each piece of the speech was handed over, on the session's timeline of it."""

    def __init__(self) -> None:
        self.starts: list[float] = []  # seconds of the timeline where each chunk starts
        self.at: list[float] = []
        self.turns: list[tuple[float, float]] = []  # (timeline s, when) of each turn's first chunk
        self.position = 0  # samples handed over so far

    def note(self, samples: int, first: bool) -> None:
        now = time.monotonic()
        if first:
            self.turns.append((self.position / 16000, now))
        self.starts.append(self.position / 16000)
        self.at.append(now)
        self.position += samples

    def latency(self, source: float, at: float) -> float:
        i = bisect.bisect_right(self.starts, source + 1e-9) - 1
        turn_start, turn_at = self.turns[bisect.bisect_right([s for s, _ in self.turns], source + 1e-9) - 1]
        return at - max(self.at[i], turn_at + (source - turn_start))


class Shown:
    """Latencies of the frames of speech, and of each turn's first."""

    def __init__(self, handed: Handed) -> None:
        self.handed, self.frames, self.firsts = handed, [], []
        self._turn = -1

    def frame(self, source: float | None) -> None:
        if source is None:
            return
        at = time.monotonic()
        latency = self.handed.latency(source, at)
        self.frames.append(latency)
        turn = bisect.bisect_right([s for s, _ in self.handed.turns], source + 1e-9) - 1
        if turn != self._turn:
            self._turn = turn
            self.firsts.append(latency)


async def hand_over(speeches, realtime: bool, speak, end_turn, handed: Handed, jitter) -> None:
    """Each sentence as one turn: 20 ms chunks in real time, or all of it at once; a pause between
    (plus ``jitter``, a turn's: where speech lands on the session's grid of frames and 2-frame
    blocks moves a turn's latency by up to a block, so turns land at every phase)."""
    await asyncio.sleep(START_S)
    for pcm, extra in zip(speeches, jitter, strict=True):
        await asyncio.sleep(extra)
        t0 = time.monotonic()
        for k, start in enumerate(range(0, len(pcm), CHUNK)):
            if realtime:
                await asyncio.sleep(max(0.0, t0 + (k + 1) * CHUNK / 16000 - time.monotonic()))
            piece = pcm[start : start + CHUNK]
            handed.note(len(piece), k == 0)
            await speak(piece)
        await end_turn()
        await asyncio.sleep(len(pcm) / 16000 * (0 if realtime else 1) + GAP_S)
    await asyncio.sleep(SETTLE_S)


async def run_plain(config, speeches, realtime: bool, jitter) -> Shown:
    from server.proxy import build_session
    from server.state import split_params
    from sonic_rt.face.analysis import FaceAnalyzer
    from sonic_rt.face.samples import load_sample
    from sonic_rt.motion.stream import load_model
    from sonic_rt.provenance.marks import Marks
    from sonic_rt.render.identity import enroll
    from streaming.live import LiveSession

    motion, video = split_params(config.params)
    identity = enroll(load_sample(config.portrait), config.geometry, FaceAnalyzer())
    session = build_session(identity, *load_model(), motion, video, Marks(0x5EED))
    executor = ThreadPoolExecutor(2)
    live = LiveSession(session, executor)
    handed = Handed()
    shown = Shown(handed)

    async def consume():
        async for frame in live.frames():
            shown.frame(frame.source)

    consumer = asyncio.create_task(consume())
    await hand_over(speeches, realtime, lambda pcm: live.push_audio(pcm.astype(np.float32) / 32768), live.flush,
                    handed, jitter)  # fmt: skip
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
    executor.shutdown(wait=False)
    return shown


async def run_pipecat(config, speeches, realtime: bool, jitter) -> Shown:
    from pipecat.frames.frames import EndFrame, TTSAudioRawFrame, TTSStartedFrame, TTSStoppedFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineWorker
    from pipecat.processors.frame_processor import FrameProcessor
    from pipecat.workers.runner import WorkerRunner

    from integrations.driver import SOURCE_KEY
    from integrations.pipecat import SonicRTVideoService

    avatar = SonicRTVideoService(config=config)
    handed = Handed()
    shown = Shown(handed)

    class Sink(FrameProcessor):  # where a transport would be (pipecat's observers run behind queues of their own)
        async def process_frame(self, frame, direction) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, TTSAudioRawFrame):
                shown.frame(frame.metadata.get(SOURCE_KEY))
            await self.push_frame(frame, direction)

    worker = PipelineWorker(Pipeline([avatar, Sink()]), cancel_on_idle_timeout=False)
    started = []

    async def speak(pcm):
        if not started:
            started.append(True)
            await worker.queue_frame(TTSStartedFrame())
        await worker.queue_frame(TTSAudioRawFrame(pcm.tobytes(), 16000, 1))

    async def end_turn():
        started.clear()
        await worker.queue_frame(TTSStoppedFrame())

    async def drive():
        while avatar.driver is None or avatar.driver.backend.fps == 0:  # the session is open
            await asyncio.sleep(0.05)
        await hand_over(speeches, realtime, speak, end_turn, handed, jitter)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), drive())
    return shown


async def run_livekit(config, speeches, realtime: bool, jitter) -> Shown:
    from livekit import rtc
    from livekit.agents.voice.avatar import AvatarRunner

    from integrations.driver import SOURCE_KEY
    from integrations.livekit import SonicRTAudioOutput, SonicRTVideoGenerator
    from integrations.livekit_room import OfflineRoom

    handed = Handed()
    shown = Shown(handed)

    class Observed(SonicRTVideoGenerator):
        def __aiter__(self):
            return self._observed()

        async def _observed(self):
            async for item in self._frames():
                if isinstance(item, rtc.AudioFrame):
                    shown.frame(item.userdata.get(SOURCE_KEY))
                yield item

    room = OfflineRoom()
    generator = Observed(config)
    await generator.start()
    output = SonicRTAudioOutput(generator)
    runner = AvatarRunner(room, audio_recv=output, video_gen=generator, options=generator.options)
    await runner.start()

    async def speak(pcm):
        await output.capture_frame(rtc.AudioFrame(pcm.tobytes(), 16000, 1, len(pcm)))

    async def end_turn():
        output.flush()

    await hand_over(speeches, realtime, speak, end_turn, handed, jitter)
    await runner.aclose()
    await output.aclose()
    await generator.aclose()
    await room.aclose()
    return shown


def figures(shown: Shown) -> tuple[float, float, float]:
    frames = np.array(shown.frames) * 1e3
    return float(np.median(frames)), float(np.percentile(frames, 95)), statistics.mean(shown.firsts) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--sentences", type=int, default=len(SENTENCES))
    ap.add_argument("--repeat", type=int, default=1, help="runs of each; the figures are the medians")
    args = ap.parse_args()

    import tempfile

    import cv2
    import torch

    from integrations.backend import AvatarConfig
    from sonic_rt.audio import tts
    from sonic_rt.config import GeometryParams

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    home = Path(tempfile.mkdtemp(prefix="bench-integrations-"))
    config = AvatarConfig(params={"seed": 5}, geometry=GeometryParams(min_resolution=args.size),
                          agent="bench", audit_db=home / "audit.db")  # fmt: skip
    speeches = [np.round(tts.synthesize(t).audio * 32767).astype(np.int16) for t in SENTENCES[: args.sentences]]
    systems = {"plain session (baseline)": run_plain, "pipecat": run_pipecat, "livekit": run_livekit}
    asyncio.run(run_plain(config, speeches[:1], False, [0.0]))  # warm: compiled kernels, caches
    seconds = sum(len(s) for s in speeches) / 16000
    print(f"{len(speeches)} sentences ({seconds:.1f} s of speech), {args.size} px, the same run; "
          f"latency per frame of speech, ms (ratio to the plain session)")  # fmt: skip
    for realtime in (True, False):
        results = {}
        for name, run in systems.items():
            runs = []
            for repeat in range(args.repeat):  # the same turn phases for every system
                jitter = np.random.default_rng(repeat).uniform(0, BLOCK_S, len(speeches))
                runs.append(figures(asyncio.run(run(config, speeches, realtime, jitter))))
            results[name] = tuple(statistics.median(r[i] for r in runs) for i in range(3))
        base = results["plain session (baseline)"]
        mode = "handed over in 20 ms chunks in real time" if realtime else "each sentence handed over at once"
        print(f"\n{mode}:")
        print(f"{'':26} {'p50':>16} {'p95':>16} {'first frame of a turn':>24}")
        for name, (p50, p95, first) in results.items():
            print(f"{name:26} {p50:7.1f} ({p50 / base[0]:4.2f}x) {p95:7.1f} ({p95 / base[1]:4.2f}x) "
                  f"{first:14.1f} ({first / base[2]:4.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
