"""Bad audio over the live transports: bursty, too fast, too slow, out of order, NaN and infinities,
clipped, silent, DC, odd rates and layouts, a long feed far ahead of playback, and a WebRTC
microphone that goes quiet and then bursts. Each session must keep delivering frames at the media
clock, bad chunks must be refused with their code and change nothing, and another session
streaming alongside must not notice.

The long *offline* case (two hours of audio through ``sonic_rt.generate`` with flat memory) is
``tests/sonic_rt/test_offline.py::test_two_hours_of_audio_keep_memory_flat``; here the live side
of a long feed is covered.
"""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack

from server.client import StreamClient
from streaming.session import MAX_BACKLOG_S
from tests.server.conftest import run
from tests.server.harness import ended, offer_peer
from tests.stress.streams import FPS, Received, Witness, frame_problems, read_for, read_until, tallied
from tests.stress.tally import scaled

CHUNK_MS = 20


def at_rate(speech16k: np.ndarray, rate: int) -> np.ndarray:
    """``speech16k`` resampled to ``rate`` (linear interpolation: enough for a voice to stay a voice)."""
    n = round(len(speech16k) * rate / 16000)
    return np.interp(np.arange(n) * 16000 / rate, np.arange(len(speech16k)), speech16k).astype(np.float32)


def pieces(pcm: np.ndarray, rate: int, ms: int = CHUNK_MS) -> list[np.ndarray]:
    step = rate * ms // 1000
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


async def paced(client: StreamClient, chunks: list, period_s: float) -> None:
    """Send ``chunks`` (arrays, or raw bytes) one every ``period_s`` seconds on the wall clock."""
    t0 = time.monotonic()
    for i, chunk in enumerate(chunks):
        await asyncio.sleep(max(0.0, t0 + i * period_s - time.monotonic()))
        if isinstance(chunk, bytes):
            await client.ws.send(chunk)
        else:
            await client.send_audio(chunk)


async def phase(client: StreamClient, seconds: float, send=None) -> Received:
    """Read the session for ``seconds`` while ``send()`` (if any) feeds it."""
    sender = asyncio.create_task(send()) if send is not None else None
    got = await read_for(client, seconds)
    if sender is not None:
        await asyncio.wait_for(sender, 10)
    return got


def last_stats(got: Received, key: str, default: float = 0.0) -> float:
    stats = got.stats()
    return stats[-1][key] if stats else default


def test_bursty_slow_and_reordered_audio_keeps_the_frames_coming(stress_server, portrait, sentence):
    """Timing abuse on one session, s16le at 16 kHz. Bursty: seconds of speech in one message, then
    nothing. Too slow: half real time, so silence is filled in between the pieces. Out of order:
    the protocol has no sequence numbers, so reordered chunks are just (garbled) audio: nothing may
    crash and the frames keep coming."""
    speech = np.tile(sentence, 2)
    rng = np.random.default_rng(0)

    async def go(cases):
        async with Witness(stress_server.ws, sentence, portrait=portrait) as witness, \
                StreamClient(stress_server.ws) as client:  # fmt: skip
            await client.start(portrait=portrait)
            await read_for(client, 0.5)

            burst = speech[: 4 * 16000]  # 4 s in one message (128 KB)
            got = await phase(client, 5.5, lambda: client.send_audio(burst))
            problems = frame_problems("bursty", got, 5.5) + [f"bursty: error {c}" for c in got.errors()]
            cases.detail["bursty_stalls"] = last_stats(got, "stalls")
            if not any(m.speech for m in got.video):
                problems.append("bursty: the burst's speech never showed (no frame flagged as speech)")
            if max(got.sources(), default=0) < 2.0:
                problems.append(f"bursty: frames showed only {max(got.sources(), default=0):.2f} s of the 4 s burst")
            cases.check(problems)

            filled = last_stats(got, "filled_ms")
            slow = pieces(speech[: 2 * 16000], 16000)[:40]  # 0.8 s of audio over 1.6 s
            got = await phase(client, 3.0, lambda: paced(client, slow, 2 * CHUNK_MS / 1000))
            problems = frame_problems("too slow", got, 3.0) + [f"too slow: error {c}" for c in got.errors()]
            if last_stats(got, "filled_ms") <= filled:
                problems.append("too slow: no silence was filled in while the audio came at half real time")
            cases.check(problems)

            chunks = pieces(speech[: 3 * 16000], 16000)
            order = np.concatenate([rng.permutation(np.arange(i, min(i + 10, len(chunks))))
                                    for i in range(0, len(chunks), 10)])  # fmt: skip
            got = await phase(client, 3.5, lambda: paced(client, [chunks[i] for i in order], CHUNK_MS / 1000))
            cases.check(frame_problems("out of order", got, 3.5) + [f"out of order: error {c}" for c in got.errors()])
            cases.check(witness.problems())
            cases.detail["stalls"] = last_stats(got, "stalls")
            cases.detail["other_session_stalls"] = witness.stalls()

    with tallied("audio: timing") as cases:
        run(go(cases), timeout=90)


def test_a_long_feed_far_ahead_stays_bounded_then_overflows_and_the_session_goes_on(stress_server, portrait, sentence):
    """``scaled(60)`` s of speech sent at 20x real time (kept within the backlog limit): the session
    queues it (its backlog, as ``stats`` reports it, grows with what was sent ahead and never past
    the limit) and keeps playing at 25 fps. Then 10x real time until the backlog limit is reached:
    ``audio_overflow``, and the session goes on; ``interrupt`` empties the backlog."""
    speech = np.tile(np.concatenate([sentence, np.zeros(4000, np.float32)]), 30)

    async def go(cases):
        async with Witness(stress_server.ws, sentence, portrait=portrait) as witness, \
                StreamClient(stress_server.ws) as client:  # fmt: skip
            await client.start(portrait=portrait)
            long_s = scaled(60)

            async def feed_fast():  # 1 s a message at 20x real time, but never more than 100 s ahead of playback
                t0 = time.monotonic()
                for i in range(long_s):
                    await asyncio.sleep(max(0.0, t0 + max(i / 20, i - 100) - time.monotonic()))
                    await client.send_audio(speech[(i % 60) * 16000 : (i % 60 + 1) * 16000])

            feed_s = max(long_s / 20, long_s - 100) + 1.0
            got = await phase(client, feed_s + 1.0, feed_fast)
            backlog = [s["backlog_ms"] for s in got.stats()]
            problems = frame_problems("20x feed", got, feed_s + 1.0) + [f"20x feed: error {c}" for c in got.errors()]
            if not backlog or max(backlog) > MAX_BACKLOG_S * 1000:
                problems.append(f"20x feed: backlog {max(backlog, default=None)} ms (limit {MAX_BACKLOG_S} s)")
            elif max(backlog) < 0.5 * min(long_s - feed_s, 100) * 1000:
                problems.append(f"20x feed: only {max(backlog):.0f} ms queued of {long_s} s sent ahead")
            cases.check(problems)

            chunk = speech[:3200]  # 200 ms every 20 ms: 10x real time
            overflow = Received()

            async def flood():
                t0 = time.monotonic()
                for i in range(int(2 * MAX_BACKLOG_S * 5)):  # at most twice the limit's worth
                    if overflow.errors():
                        return
                    await asyncio.sleep(max(0.0, t0 + i * CHUNK_MS / 1000 - time.monotonic()))
                    await client.send_audio(chunk)

            sender = asyncio.create_task(flood())
            await read_until(client, lambda got: "audio_overflow" in got.errors(), 2 * MAX_BACKLOG_S / 10 + 10,
                             into=overflow)  # fmt: skip
            await asyncio.wait_for(sender, 10)
            problems = [] if "audio_overflow" in overflow.errors() else ["10x feed: no audio_overflow at the limit"]
            problems += [f"10x feed: error {c}" for c in overflow.errors() if c != "audio_overflow"]
            after = await read_for(client, 2.0)
            problems += frame_problems("after audio_overflow", after, 2.0)
            if overflow.video and after.video and after.video[0].index != overflow.video[-1].index + 1:
                problems.append("after audio_overflow: frames were skipped")
            cases.check(problems)

            await client.interrupt()
            got = await read_for(client, 2.5)
            problems = frame_problems("interrupt", got, 2.5)
            if not any(e["type"] == "interrupted" for e in got.events):
                problems.append("interrupt: no interrupted event")
            if not any(s["backlog_ms"] < 100 for s in got.stats()):
                problems.append(f"interrupt: the backlog stayed at {last_stats(got, 'backlog_ms', None)} ms")
            cases.check(problems)
            cases.check(witness.problems())

    with tallied("audio: timing") as cases:
        run(go(cases), timeout=120)


def test_bad_and_extreme_sample_values_are_refused_or_played(stress_server, portrait, sentence):
    """Values: NaN and infinities in f32le are refused (``bad_audio_chunk``) and change nothing — the
    frames show only the audio that was taken, and no NaN reaches the motion; finite extremes
    (±3e38 square waves, over full scale, subnormals) are clipped and played. In s16le: full-scale
    square waves, -32768 held, the Nyquist tone at full scale, a DC offset and long silence (idle
    frames whose audio is digital silence)."""
    square = np.sign(np.sin(2 * np.pi * 200 * np.arange(16000) / 16000)).astype(np.float32)
    good = pieces(sentence[: 2 * 16000], 16000)
    bad = {"NaN": np.full(320, np.nan), "+inf": np.full(320, np.inf), "-inf": np.full(320, -np.inf),
           "one NaN": np.where(np.arange(320) == 160, np.nan, good[10][:320])}  # fmt: skip
    extreme = {"±3e38 square": 3e38 * square[:16000], "over full scale": 1.5 * sentence[:16000],
               "subnormal": np.full(16000, 1e-45)}  # fmt: skip

    def stereo(x) -> bytes:
        return np.repeat(np.asarray(x, np.float32)[:, None], 2, axis=1).astype("<f4").tobytes()

    async def values_f32(cases):
        async with StreamClient(stress_server.ws) as client:
            await client.start(portrait=portrait, audio={"format": "f32le", "channels": 2}, motion_events=True)
            taken_s = 0.0
            for name, chunk in bad.items():
                got = await phase(client, 1.5, lambda chunk=chunk: paced(client, [stereo(g) for g in good[:10]]
                                                                          + [stereo(chunk)], CHUNK_MS / 1000))
                taken_s += 10 * CHUNK_MS / 1000
                problems = frame_problems(name, got, 1.5)
                if got.errors() != ["bad_audio_chunk"]:
                    problems.append(f"{name}: errors {got.errors()} instead of one bad_audio_chunk")
                if max(got.sources(), default=0) > taken_s + 0.05:
                    problems.append(f"{name}: frames show {max(got.sources()):.2f} s of audio, only {taken_s:.2f} s "
                                    "was taken: the refused chunk counted")  # fmt: skip
                cases.check(problems + motion_problems(name, got))
            for name, samples in extreme.items():
                got = await phase(client, 1.5, lambda s=samples: paced(client, [stereo(c) for c in pieces(s, 16000)],
                                                                        CHUNK_MS / 1000))  # fmt: skip
                problems = frame_problems(name, got, 1.5) + [f"{name}: error {c}" for c in got.errors()]
                cases.check(problems + motion_problems(name, got))

    async def values_s16(cases):
        full = np.round(square * 32767).astype("<i2")
        raw = {
            "full-scale square": np.tile(full, 2).tobytes(),
            "-32768 held": np.full(16000, -32768, "<i2").tobytes(),
            "Nyquist at full scale": np.tile(np.array([-32768, 32767], "<i2"), 8000).tobytes(),
            "DC offset": np.round(np.clip(0.5 * sentence[:32000] + 0.4, -1, 1) * 32767).astype("<i2").tobytes(),
        }
        async with StreamClient(stress_server.ws) as client:
            await client.start(portrait=portrait)
            for name, data in raw.items():
                chunks = [data[i : i + 640] for i in range(0, len(data), 640)]
                seconds = len(chunks) * CHUNK_MS / 1000 + 0.5
                got = await phase(client, seconds, lambda c=chunks: paced(client, c, CHUNK_MS / 1000))
                cases.check(frame_problems(name, got, seconds) + [f"{name}: error {c}" for c in got.errors()])
            silence = [np.zeros(320, "<i2").tobytes()] * 150
            got = await phase(client, 3.0, lambda: paced(client, silence, CHUNK_MS / 1000))
            problems = frame_problems("silence", got, 3.0) + [f"silence: error {c}" for c in got.errors()]
            tail = [m for m in got.video if m.index >= got.video[-1].index - FPS] if got.video else []
            if any(m.speech for m in tail):
                problems.append("silence: frames after 2 s of silence are still flagged as speech")
            if got.audio and np.abs(got.pcm()[-FPS * 640 :]).max() != 0:
                problems.append("silence: the frames' audio after 2 s of digital silence is not silent")
            cases.check(problems)

    async def go(cases):
        async with Witness(stress_server.ws, sentence, portrait=portrait) as witness:
            await values_f32(cases)
            await values_s16(cases)
            cases.check(witness.problems())

    with tallied("audio: values") as cases:
        run(go(cases), timeout=120)


def motion_problems(name: str, got: Received) -> list[str]:
    """The motion the session reports (``motion`` events) is finite."""
    values = [v for e in got.events if e["type"] == "motion" for v in e["values"].values()]
    if not values:
        return [f"{name}: no motion events"]
    return [] if np.isfinite(values).all() else [f"{name}: NaN or infinite motion reached the client"]


FORMATS = [  # sample format, rate, channels
    ("s16le", 8000, 1), ("s16le", 11025, 1), ("s16le", 44100, 2), ("f32le", 192000, 2), ("f32le", 48000, 8),
]  # fmt: skip
BAD_STARTS = [  # the start message's audio field, and the code it must get
    ({"sample_rate": 0}, "bad_sample_rate"), ({"sample_rate": 7999}, "bad_sample_rate"),
    ({"sample_rate": 192001}, "bad_sample_rate"), ({"sample_rate": -1}, "bad_sample_rate"),
    ({"sample_rate": 10**12}, "bad_sample_rate"), ({"channels": 0}, "bad_channel_count"),
    ({"channels": 9}, "bad_channel_count"), ({"channels": -2}, "bad_channel_count"),
    ({"sample_rate": 44100.5}, "bad_message"), ({"format": "s24le"}, "bad_message"),
    ({"channels": "two"}, "bad_message"),
]  # fmt: skip


def test_odd_rates_and_layouts_play_and_impossible_ones_are_refused_at_start(stress_server, portrait, sentence):
    """8 kHz, 11.025 kHz, 44.1 kHz stereo, 192 kHz stereo float, 8 channels: each plays (speech is
    found in it, and the frames show as many seconds of it as were sent); rates and layouts outside
    8-192 kHz and 1-8 channels are refused at ``start`` with their code, take no place, and the
    connection can start a good session after them."""
    speech = sentence[: 2 * 16000]

    async def go(cases):
        async with Witness(stress_server.ws, sentence, portrait=portrait) as witness:
            for fmt, rate, channels in FORMATS:
                name = f"{fmt} {rate} Hz x{channels}"
                pcm = np.repeat(at_rate(speech, rate)[:, None], channels, axis=1)
                async with StreamClient(stress_server.ws) as client:
                    await client.start(portrait=portrait, audio={"format": fmt, "sample_rate": rate,
                                                                 "channels": channels})  # fmt: skip
                    got = await phase(client, 3.0, lambda c=client, x=pcm, r=rate: paced(c, pieces(x, r),
                                                                                        CHUNK_MS / 1000))  # fmt: skip
                problems = frame_problems(name, got, 3.0) + [f"{name}: error {c}" for c in got.errors()]
                if not any(m.speech for m in got.video):
                    problems.append(f"{name}: no speech found in it")
                if not 1.0 < max(got.sources(), default=0) <= 2.05:
                    problems.append(f"{name}: frames show {max(got.sources(), default=0):.2f} s of 2 s sent")
                cases.check(problems)

            for _ in range(100):  # the sessions above give their places back as their connections close
                if stress_server.state.slots.used == 1:  # the witness's
                    break
                await asyncio.sleep(0.05)
            async with StreamClient(stress_server.ws) as client:
                used = httpx.get(f"{stress_server.http}/healthz").json()["sessions"]
                for audio, code in BAD_STARTS:
                    await client.send_json({"type": "start", "portrait": portrait, "audio": audio})
                    got = await read_until(client, lambda got: got.errors(), 10)
                    problems = [] if got.errors() == [code] else [f"start {audio}: {got.errors()} instead of {code}"]
                    if httpx.get(f"{stress_server.http}/healthz").json()["sessions"] != used:
                        problems.append(f"start {audio}: it took a place")
                    cases.check(problems)
                ready = await client.start(portrait=portrait)
                got = await read_for(client, 1.0)
                cases.check([] if ready["type"] == "ready" and got.video else ["no good start after the bad ones"])
            cases.check(witness.problems())

    with tallied("audio: formats") as cases:
        run(go(cases), timeout=120)


class PatchyMicrophone(MediaStreamTrack):
    """A microphone (48 kHz stereo s16, 20 ms frames) that sends silence, then nothing for a while,
    then bursts of speech frames with no pacing at all, then speech in real time."""

    kind = "audio"

    def __init__(self, speech16k: np.ndarray, silence_s: float = 1.0, nothing_s: float = 2.0,
                 bursts: int = 3) -> None:  # fmt: skip
        super().__init__()
        speech = np.round(np.repeat(at_rate(speech16k, 48000)[:, None], 2, axis=1) * 32767).astype(np.int16)
        self.frames = [np.zeros((960, 2), np.int16)] * round(silence_s * 50)
        self.silence = len(self.frames)
        self.nothing_s = nothing_s
        self.burst_ends = []
        for _ in range(bursts):  # 0.5 s of speech at once, then 0.5 s of nothing
            self.frames += [speech[i * 960 : (i + 1) * 960] for i in range(25)]
            self.burst_ends.append(len(self.frames))
        self.frames += [speech[i * 960 : (i + 1) * 960] for i in range(25, len(speech) // 960)]
        self.sent = 0
        self.t0 = None

    async def recv(self) -> av.AudioFrame:
        self.t0 = self.t0 or time.monotonic()
        if self.sent == self.silence:
            await asyncio.sleep(self.nothing_s)  # nothing at all: no packets
            self.t0 = time.monotonic() - self.sent * 0.02
        elif self.sent in self.burst_ends:
            await asyncio.sleep(0.5)
            self.t0 = time.monotonic() - self.sent * 0.02
        elif self.sent < self.silence or self.sent > self.burst_ends[-1]:
            await asyncio.sleep(max(0.0, self.t0 + self.sent * 0.02 - time.monotonic()))
        chunk = self.frames[self.sent % len(self.frames)]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.sent * 960, fractions.Fraction(1, 48000)
        self.sent += 1
        return frame


def test_a_webrtc_microphone_that_goes_quiet_then_bursts(stress_server, portrait, sentence):
    """A WebRTC microphone: silence, then no packets at all for 2 s, then bursts of half a second of
    speech sent at once: the face keeps coming over the video track, the speech is heard
    (``speech_start``), no error; closing the peer ends the session (``disconnected``)."""

    async def go(cases):
        async with Witness(stress_server.ws, sentence, portrait=portrait) as witness:
            peer = await offer_peer(stress_server.http, PatchyMicrophone(np.tile(sentence, 2)), portrait=portrait)
            r, pc, events = peer.response, peer.pc, peer.events
            assert r.status_code == 200, r.text
            video = await peer.track("video")
            seconds, frames = 7.0, 0
            deadline = time.monotonic() + seconds
            try:
                while time.monotonic() < deadline:
                    await asyncio.wait_for(video.recv(), 2)
                    frames += 1
            finally:
                await pc.close()
            summary = await ended(stress_server.state.audit.log, r.json()["session"])
            kinds = [e["type"] for e in events]
            problems = [] if frames >= 0.5 * FPS * (seconds - 1) else [f"webrtc: {frames} frames in {seconds} s"]
            problems += [f"webrtc: error {e['code']}" for e in events if e["type"] == "error"]
            if "speech_start" not in kinds:
                problems.append("webrtc: the bursts' speech was never heard (no speech_start)")
            if summary.end_reason != "disconnected":
                problems.append(f"webrtc: the session ended {summary.end_reason!r}")
            cases.check(problems)
            cases.check(witness.problems())

    with tallied("audio: webrtc") as cases:
        run(go(cases), timeout=90)
