"""The pipecat avatar service, in pipecat's own test harness and in a pipeline with a paced output
transport: frames at the session's rate with their speech, interrupts, idle, teardown, and the
same frames as a plain session."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import numpy as np
import pytest

pytest.importorskip("pipecat")

from pipecat.frames.frames import (  # noqa: E402
    EndFrame,
    InterruptionFrame,
    MetricsFrame,
    OutputImageRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.metrics.metrics import TTFBMetricsData  # noqa: E402
from pipecat.observers.base_observer import BaseObserver, FramePushed  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.tests.utils import SleepFrame, run_test  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

from integrations.driver import TIMINGS_KEY  # noqa: E402
from integrations.espeak import espeak_timings  # noqa: E402
from integrations.pipecat import FRAME_KEY, SonicRTVideoService  # noqa: E402
from integrations.pipecat_mp4 import Mp4OutputTransport  # noqa: E402
from sonic_rt.provenance import watermark  # noqa: E402
from tests.integrations.conftest import chunks  # noqa: E402
from tests.integrations.plain import first_speech, int16, start_like  # noqa: E402

TIMEOUT_S = 120
START_S = 3.0  # a fresh avatar enrols its portrait and loads the model before its first frame


def tts_turn(pcm: np.ndarray, marks: dict | None = None) -> list:
    """What a TTS sends for one utterance: started, one frame's audio per chunk, stopped."""
    audio = [TTSAudioRawFrame(piece.tobytes(), 16000, 1) for piece in chunks(pcm)]
    if marks is not None:
        audio[0].metadata[TIMINGS_KEY] = marks
    return [TTSStartedFrame(), *audio, TTSStoppedFrame()]


def speech_of(frames) -> np.ndarray:
    parts = [np.frombuffer(f.audio, np.int16) for f in frames if isinstance(f, TTSAudioRawFrame)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)


def indices(frames) -> list[int]:
    return [f.metadata[FRAME_KEY] for f in frames if isinstance(f, OutputImageRawFrame)]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT_S))


class Pushed(BaseObserver):
    """Every frame ``source`` pushes downstream, in order."""

    def __init__(self, source) -> None:
        super().__init__()
        self.source, self.frames = source, []

    async def on_push_frame(self, data: FramePushed) -> None:
        if data.source is self.source:
            self.frames.append(data.frame)


async def until(condition, seconds: float = 60.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


def test_a_paced_transport_gets_the_face_at_25_fps_with_its_speech(config, pcm, speech, tmp_path):
    path = tmp_path / "avatar.mp4"

    async def main():
        avatar = SonicRTVideoService(config=config)
        out = Mp4OutputTransport(path, 256)
        pushed = Pushed(avatar)
        worker = PipelineWorker(Pipeline([avatar, out]), params=PipelineParams(enable_metrics=True),
                                cancel_on_idle_timeout=False, observers=[pushed])  # fmt: skip

        async def feed():
            await until(lambda: out.frames_written >= 10)  # idle frames from the start
            await worker.queue_frames(tts_turn(pcm, espeak_timings(speech)))
            await until(lambda: any(isinstance(f, TTSStoppedFrame) for f in pushed.frames))
            written = out.frames_written
            await until(lambda: out.frames_written >= written + 10)  # and idle again after the turn
            await worker.queue_frame(EndFrame())

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await asyncio.gather(runner.run(), feed())
        return avatar, out, pushed.frames

    avatar, out, frames = run(main())
    kinds = [type(f) for f in frames]
    first_audio = kinds.index(TTSAudioRawFrame)
    assert kinds.index(TTSStartedFrame) < first_audio and kinds.count(TTSStartedFrame) == 1
    assert kinds.index(TTSStoppedFrame) > len(kinds) - 1 - kinds[::-1].index(TTSAudioRawFrame)
    assert kinds[:first_audio].count(OutputImageRawFrame) >= 10
    assert np.abs(speech_of(frames).astype(int) - pcm).max() <= 1  # all of it, in order, nothing else
    assert indices(frames) == list(range(len(indices(frames))))  # one image per frame, none lost
    assert any(isinstance(f, MetricsFrame) and isinstance(f.data[0], TTFBMetricsData) for f in frames)
    entries = "stream=codec_type,r_frame_rate,nb_frames,duration"
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", entries, "-of", "json", str(path)],
                           capture_output=True, text=True, check=True)  # fmt: skip
    streams = {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}
    assert streams["video"]["r_frame_rate"] == "25/1" and int(streams["video"]["nb_frames"]) == out.frames_written
    assert abs(float(streams["audio"]["duration"]) - float(streams["video"]["duration"])) <= 0.1
    written = np.concatenate(out.audio)
    assert np.abs(written).max() > 0.1 and len(written) >= len(pcm)
    assert watermark.detect_video(path).payload == avatar.driver.watermark


def test_an_interrupt_stops_the_speech_and_no_stale_frame_follows(config, pcm):
    avatar = SonicRTVideoService(config=config)
    frames_to_send = [SleepFrame(START_S), *tts_turn(np.tile(pcm, 3)), SleepFrame(1.2), InterruptionFrame(),
                      SleepFrame(1.5)]  # fmt: skip
    down, _ = run(run_test(avatar, frames_to_send=frames_to_send, start_timeout=30))
    cut = next(i for i, f in enumerate(down) if isinstance(f, InterruptionFrame))
    before, after = down[:cut], down[cut + 1 :]
    assert 0 < len(speech_of(before)) < 3 * len(pcm)  # it was speaking, and did not finish
    assert not any(isinstance(f, TTSAudioRawFrame | TTSStartedFrame) for f in after)  # not a sample more
    assert len(indices(after)) >= 20  # the face goes on, idle
    assert indices(after)[0] > indices(before)[-1]
    assert indices(after)[0] - indices(before)[-1] <= 2  # the next frame within a frame period: at most
    assert np.all(np.diff(indices(after)) == 1)  # the stale one dropped, then every frame


def test_no_tts_audio_while_idle_and_each_turn_is_spoken_once(config, pcm):
    avatar = SonicRTVideoService(config=config)
    frames_to_send = [SleepFrame(START_S), *tts_turn(pcm), SleepFrame(2.5), *tts_turn(pcm), SleepFrame(2.5)]
    down, _ = run(run_test(avatar, frames_to_send=frames_to_send, start_timeout=30))
    kinds = [type(f) for f in down]
    assert kinds.count(TTSStartedFrame) == 2 and kinds.count(TTSStoppedFrame) == 2
    starts = [i for i, k in enumerate(kinds) if k is TTSStartedFrame]
    stops = [i for i, k in enumerate(kinds) if k is TTSStoppedFrame]
    for lo, hi in zip([0, *stops], [*starts, len(kinds)], strict=True):  # outside the turns: images only
        assert TTSAudioRawFrame not in kinds[lo:hi]
        assert kinds[lo:hi].count(OutputImageRawFrame) >= 10
    for lo, hi in zip(starts, stops, strict=True):
        assert np.abs(speech_of(down[lo:hi]).astype(int) - pcm).max() <= 1


def test_cleanup_ends_the_remote_session_and_gives_its_place_back(config, pcm):
    import httpx

    from server.settings import Settings
    from tests.server.conftest import LiveServer, unrated

    settings = Settings(max_sessions=1, workers=0, jobs=0, limits=unrated())
    with LiveServer(settings) as server:
        remote = config.replace(url=server.ws)

        async def healthz():
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{server.http}/healthz", timeout=5)).json()["sessions"]

        async def main():
            avatar = SonicRTVideoService(config=remote)
            worker = PipelineWorker(Pipeline([avatar]), cancel_on_idle_timeout=False)
            images = Pushed(avatar)
            worker.add_observer(images)
            sessions = []

            async def feed():
                await until(lambda: len(indices(images.frames)) >= 10)
                sessions.append(await healthz())  # the avatar holds the server's one place
                await worker.queue_frames(tts_turn(pcm))
                await until(lambda: any(isinstance(f, TTSStoppedFrame) for f in images.frames))
                await worker.queue_frame(EndFrame())

            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(worker)
            await asyncio.gather(runner.run(), feed())
            await avatar.cleanup()  # after stop: a second close does nothing
            for _ in range(100):
                if await healthz() == 0:
                    break
                await asyncio.sleep(0.05)
            sessions.append(await healthz())
            return avatar, images.frames, sessions

        avatar, frames, sessions = run(main())
    assert sessions == [1, 0]
    assert len(speech_of(frames)) == len(pcm)  # the server's speech, quantised to 16 bits both ways
    images = [np.frombuffer(f.image, np.uint8).reshape(f.size[1], f.size[0], 3) for f in frames
              if isinstance(f, OutputImageRawFrame)]  # fmt: skip
    assert watermark.detect(images).payload == avatar.driver.watermark  # the server's record's watermark


def test_the_same_frames_as_a_plain_session_for_the_same_seed(config, pcm, speech, analyzer, shipped):
    from sonic_rt.face.samples import load_sample
    from sonic_rt.render.identity import enroll

    marks = espeak_timings(speech)
    avatar = SonicRTVideoService(config=config)
    frames_to_send = [SleepFrame(START_S), *tts_turn(pcm, marks), SleepFrame(2.5)]
    t0 = time.monotonic()
    down, _ = run(run_test(avatar, frames_to_send=frames_to_send, start_timeout=30))
    assert time.monotonic() - t0 < TIMEOUT_S
    images = [f for f in down if isinstance(f, OutputImageRawFrame)]
    assert indices(down) == list(range(len(images)))
    first = next(i for i, f in enumerate(down) if isinstance(f, TTSAudioRawFrame))
    first_index = indices(down[:first] + [f for f in down[first:] if isinstance(f, OutputImageRawFrame)][:1])[-1]
    identity = enroll(load_sample(config.portrait), config.geometry, analyzer)
    plain = start_like(identity, shipped, config, avatar.driver.watermark, pcm.astype(np.float32) / 32768, marks,
                       first_index, len(images))  # fmt: skip
    assert first_speech(plain) == first_index
    for image, frame in zip(images, plain, strict=True):
        assert np.array_equal(np.frombuffer(image.image, np.uint8).reshape(frame.image.shape), frame.image)
    spoken = np.concatenate([f.audio for f in plain if f.source is not None])[: len(pcm)]
    assert np.array_equal(speech_of(down), int16(spoken))


def test_an_end_frame_lets_the_speech_play_out_first(config, pcm):
    avatar = SonicRTVideoService(config=config)  # the speech and the EndFrame come before the session is open
    down, _ = run(run_test(avatar, frames_to_send=tts_turn(pcm), start_timeout=30))
    assert np.abs(speech_of(down).astype(int) - pcm).max() <= 1
    assert [type(f) for f in down].count(TTSStoppedFrame) == 1


def test_a_session_that_cannot_open_is_a_fatal_error(config, tmp_path, astronaut):
    from pipecat.frames.frames import ErrorFrame

    from tests.conftest import png_bytes

    path = tmp_path / "face.png"
    path.write_bytes(png_bytes(astronaut))
    avatar = SonicRTVideoService(config=config.replace(portrait=str(path)))  # no consent
    down, up = run(run_test(avatar, frames_to_send=[SleepFrame(2.0)], start_timeout=30))
    errors = [f for f in up if isinstance(f, ErrorFrame)]
    assert errors and errors[0].fatal and "consent" in errors[0].error
    assert not any(isinstance(f, OutputImageRawFrame) for f in down)
