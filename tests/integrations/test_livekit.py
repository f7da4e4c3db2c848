"""The LiveKit avatar: ``SonicRTVideoGenerator`` under the framework's own ``AvatarRunner`` with an
offline room (the real native media sources, no server), and a whole ``AgentSession``."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("livekit.agents")

from livekit import rtc  # noqa: E402
from livekit.agents.voice.avatar import AudioSegmentEnd, AvatarRunner  # noqa: E402

from integrations.driver import TIMINGS_KEY  # noqa: E402
from integrations.espeak import espeak_timings  # noqa: E402
from integrations.livekit import SonicRTAudioOutput, SonicRTAvatarSession, SonicRTVideoGenerator  # noqa: E402
from integrations.livekit_room import OfflineRoom  # noqa: E402
from sonic_rt.provenance.audit import AuditLog  # noqa: E402
from tests.integrations.conftest import chunks  # noqa: E402
from tests.integrations.plain import first_speech, int16, start_like  # noqa: E402

TIMEOUT_S = 120
PLAYOUT_S = 15.0  # the longest a wait for playout may take here (it returns far sooner)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT_S))


class Recorded(SonicRTVideoGenerator):
    """The generator, noting what it yields and when (monotonic)."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.yielded: list[tuple[float, object]] = []

    def __aiter__(self):
        return self._recorded()

    async def _recorded(self):
        async for item in self._frames():
            self.yielded.append((time.monotonic(), item))
            yield item


class Rig:
    """A generator, the agent's audio output and ``AvatarRunner`` in an offline room."""

    def __init__(self, config) -> None:
        self.room = OfflineRoom()
        self.generator = Recorded(config)
        self.events: list[tuple] = []
        self.runner_closed = False

    async def __aenter__(self) -> Rig:
        await self.generator.start()
        self.output = SonicRTAudioOutput(self.generator)
        self.output.on("playback_started", lambda ev: self.events.append(("started", time.monotonic())))
        self.output.on("playback_finished", lambda ev: self.events.append(("finished", ev)))
        self.runner = AvatarRunner(self.room, audio_recv=self.output, video_gen=self.generator,
                                   options=self.generator.options)  # fmt: skip
        await self.runner.start()
        await until(lambda: len(self.videos()) >= 5)  # idle frames from the start
        return self

    async def stop_runner(self) -> None:
        if not self.runner_closed:
            self.runner_closed = True
            await self.runner.aclose()

    async def __aexit__(self, *exc) -> None:
        await self.stop_runner()
        await self.output.aclose()
        await self.generator.aclose()
        await self.room.aclose()

    async def say(self, pcm: np.ndarray, marks: dict | None = None) -> None:
        for i, piece in enumerate(chunks(pcm)):
            frame = rtc.AudioFrame(piece.tobytes(), 16000, 1, len(piece))
            if i == 0 and marks is not None:
                frame.userdata[TIMINGS_KEY] = marks
            await self.output.capture_frame(frame)
        self.output.flush()

    async def playout(self):
        return await asyncio.wait_for(self.output.wait_for_playout(), PLAYOUT_S)

    def videos(self, since: float = 0.0) -> list[rtc.VideoFrame]:
        return [f for t, f in self.generator.yielded if t >= since and isinstance(f, rtc.VideoFrame)]

    def audio(self, since: float = 0.0) -> list[rtc.AudioFrame]:
        return [f for t, f in self.generator.yielded if t >= since and isinstance(f, rtc.AudioFrame)]

    def started(self) -> list[float]:
        return [t for kind, t in self.events if kind == "started"]


async def until(condition, seconds: float = 60.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {seconds} s")


def test_playback_finishes_at_the_turns_length(config, pcm):
    async def main():
        async with Rig(config) as rig:
            await rig.say(pcm)
            return rig, await rig.playout()

    rig, finished = run(main())
    assert not finished.interrupted
    assert finished.playback_position == pytest.approx(len(pcm) / 16000, abs=1e-3)
    assert len(rig.started()) == 1
    spoken = np.concatenate([np.frombuffer(f.data, np.int16) for f in rig.audio()])
    assert np.abs(spoken.astype(int) - pcm).max() <= 1  # the turn's audio, once, in order
    kinds = [type(f) for _, f in rig.generator.yielded]
    assert kinds.count(AudioSegmentEnd) == 1 and kinds.index(AudioSegmentEnd) > kinds.index(rtc.AudioFrame)


def test_clear_buffer_interrupts_with_the_position_played_and_nothing_stale_after(config, pcm):
    async def main():
        async with Rig(config) as rig:
            await rig.say(np.tile(pcm, 3))
            await until(lambda: rig.started())
            await until(lambda: len(rig.audio()) >= 12)
            cleared = time.monotonic()
            played = len(rig.audio()) * 0.04  # what the runner can have had by now
            rig.output.clear_buffer()
            finished = await rig.playout()
            shown = len(rig.videos(cleared))
            await until(lambda: len(rig.videos(cleared)) >= shown + 15)  # the face goes on, idle
            return rig, finished, cleared, played

    rig, finished, cleared, played = run(main())
    assert finished.interrupted
    assert 0 < finished.playback_position <= played + 1e-6  # the runner's count of what it passed on
    assert rig.audio(cleared) == []  # not one chunk of the cut turn after the clear
    assert len(rig.started()) == 1  # and no spurious playback start from a stale one


def test_clear_buffer_before_the_first_frame_does_not_hang(config, pcm):
    async def main():
        async with Rig(config) as rig:
            await rig.output.capture_frame(rtc.AudioFrame(pcm[:640].tobytes(), 16000, 1, 640))
            rig.output.clear_buffer()  # before the runner has read anything
            early = await rig.playout()
            await rig.say(pcm)  # and the avatar goes on speaking
            return early, await rig.playout()

    early, after = run(main())
    assert early.interrupted and early.playback_position == 0.0
    assert not after.interrupted and after.playback_position == pytest.approx(len(pcm) / 16000, abs=1e-3)


def test_every_frame_is_published_at_25_fps(config, pcm):
    async def main():
        async with Rig(config) as rig:
            await rig.say(pcm)
            await rig.playout()
            await until(lambda: len(rig.room.video) >= 60)
            await rig.stop_runner()  # nothing more is yielded: what was, is published (bar a few queued)
            yielded = rig.videos()
            await until(lambda: len(rig.room.video) >= len(yielded) - 3, 10)
            return rig, yielded, list(rig.room.video)

    rig, yielded, published = run(main())
    assert rig.generator.options.video_fps == 25 and rig.runner.av_sync._video_fps == 25
    assert len(yielded) - 3 <= len(published) <= len(yielded)  # every frame, but those queued at the stop
    first = np.frombuffer(yielded[0].data, np.uint8).reshape(256, 256, 3).astype(int)
    assert np.abs(published[0][1].astype(int) - first).mean() < 2  # the same picture, through I420 and back
    stamps = np.array([t for t, _ in published])
    print(f"published at {1e6 / np.median(np.diff(stamps)):.2f} fps")  # measured, not asserted: timing


def test_the_same_frames_as_a_plain_session_for_the_same_seed(config, pcm, speech, analyzer, shipped):
    from sonic_rt.face.samples import load_sample
    from sonic_rt.render.identity import enroll

    marks = espeak_timings(speech)

    async def main():
        generator = SonicRTVideoGenerator(config)
        await generator.start()
        items = []
        async for item in generator:
            items.append(item)
            videos = sum(isinstance(i, rtc.VideoFrame) for i in items)
            if videos == 10:
                for i, piece in enumerate(chunks(pcm)):
                    frame = rtc.AudioFrame(piece.tobytes(), 16000, 1, len(piece))
                    frame.userdata.update({TIMINGS_KEY: marks} if i == 0 else {})
                    await generator.push_audio(frame)
                await generator.push_audio(AudioSegmentEnd())
            if any(isinstance(i, AudioSegmentEnd) for i in items) and isinstance(item, rtc.VideoFrame) and videos > 80:
                break
        await generator.aclose()
        return generator, items

    generator, items = run(main())
    videos = [np.frombuffer(i.data, np.uint8).reshape(256, 256, 3) for i in items if isinstance(i, rtc.VideoFrame)]
    first = sum(isinstance(i, rtc.VideoFrame) for i in items[: next(k for k, i in enumerate(items)
                                                                   if isinstance(i, rtc.AudioFrame))]) - 1  # fmt: skip
    identity = enroll(load_sample(config.portrait), config.geometry, analyzer)
    plain = start_like(identity, shipped, config, generator.driver.watermark, pcm.astype(np.float32) / 32768, marks,
                       first, len(videos))  # fmt: skip
    assert first_speech(plain) == first
    for video, frame in zip(videos, plain, strict=True):
        assert np.array_equal(video, frame.image)
    spoken = np.concatenate([np.frombuffer(i.data, np.int16) for i in items if isinstance(i, rtc.AudioFrame)])
    assert np.array_equal(spoken, int16(np.concatenate([f.audio for f in plain if f.source is not None]))[: len(pcm)])


def test_an_agent_session_says_a_sentence_and_is_interrupted(config):
    from livekit.agents import Agent, AgentSession
    from livekit.agents.testing import fake_job_context

    from integrations.livekit_tts import EspeakTTS

    async def main():
        room = OfflineRoom()
        with fake_job_context(room=room):
            session = AgentSession(tts=EspeakTTS())
            metrics = []
            session.on("metrics_collected", lambda ev: metrics.append(ev.metrics))
            avatar = SonicRTAvatarSession(config)
            await avatar.start(session, room=room)
            await session.start(Agent(instructions="You are a talking portrait."))
            said = session.say("Hello! I am a talking portrait, animated on a CPU.")
            await asyncio.wait_for(said.wait_for_playout(), 30)
            cut = session.say("This sentence is going to be interrupted long before it ends, I am quite sure of it.")
            await until(lambda: len(avatar.generator.driver.latency.recent) > 0 and cut.id in _playing(session))
            await asyncio.sleep(0.8)
            await asyncio.wait_for(session.interrupt(), 10)
            await asyncio.wait_for(cut.wait_for_playout(), 10)
            await session.aclose()
            await avatar.aclose()
            await room.aclose()
        return said, cut, session, metrics, room

    said, cut, session, metrics, room = run(main())
    assert not said.interrupted and cut.interrupted
    spoken = [i for i in session.history.items if i.type == "message" and i.role == "assistant"]
    assert [m.interrupted for m in spoken] == [False, True]
    assert spoken[0].metrics["playback_latency"] > 0
    avatar_metrics = [m for m in metrics if m.type == "avatar_metrics"]
    assert any(m.playback_latency > 0 for m in avatar_metrics)  # the framework's latency metric, from the face
    assert all(m.metadata.model_provider == "sonic-rt" for m in avatar_metrics)
    assert len(room.video) > 50
    (record,) = AuditLog(config.audit_db).sessions()
    assert record.transport == "livekit" and record.requester == "test-agent" and record.end_reason == "stopped"


def _playing(session) -> set[str]:
    speech = session.current_speech
    return set() if speech is None else {speech.id}
