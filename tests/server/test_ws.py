"""The WebSocket protocol end to end: the real server on loopback, the Python client."""

from __future__ import annotations

import asyncio
import json

import av
import cv2
import httpx
import numpy as np
import pytest
import websockets
from click.testing import CliRunner

from server import protocol as p
from server.client import StreamClient, StreamError, VideoDecoder
from sonic_rt.audio.decode import decode_audio
from sonic_rt.cli import main
from sonic_rt.provenance.watermark import detect
from tests.server.conftest import run
from tests.server.harness import eventually


async def collect(client: StreamClient, until, limit: int = 2000) -> tuple[list[p.Media], list[dict]]:
    media, events = [], []
    async for item in client:
        (events if isinstance(item, dict) else media).append(item)
        if until(media, events) or len(media) > limit:
            break
    return media, events


def video(media):
    return [m for m in media if m.kind == p.KIND_VIDEO]


def test_a_spoken_sentence_comes_back_as_a_talking_face_with_its_audio(server, sentence):
    async def go():
        async with StreamClient(server.ws) as client:
            ready = await client.start(portrait="sample:astronaut", motion_events=True,
                                       audio={"sample_rate": 48000, "channels": 2})  # fmt: skip
            assert ready["fps"] == 25 and ready["width"] == 512 and ready["protocol"] == p.VERSION
            stereo48 = np.repeat(np.repeat(sentence, 3)[:, None], 2, axis=1)
            sender = asyncio.create_task(client.stream_audio(stereo48, chunk_ms=20, realtime=False))
            end = len(sentence) / 16000 - 0.1
            media, events = await collect(client, lambda m, e: any(x.source and x.source > end for x in video(m)))
            await sender
            await client.stop()
            return media, events

    media, events = run(go())
    frames = video(media)
    assert [m.index for m in frames] == list(range(len(frames)))
    audio_msgs = [m for m in media if m.kind == p.KIND_AUDIO]
    assert [m.index for m in audio_msgs] == [m.index for m in frames]  # each frame's audio, sent before it
    assert all(len(m.payload) == 640 * 2 for m in audio_msgs)
    image = VideoDecoder().decode(frames[-1])[0]
    assert image.shape == (512, 512, 3)
    # the audio that comes back is the sentence, in step with the frames that show it
    played = np.concatenate([np.frombuffer(m.payload, "<i2") for m in audio_msgs if m.source is not None]) / 32768
    n = min(len(played), len(sentence)) - 2000
    assert np.corrcoef(played[1000:n], sentence[1000:n])[0, 1] > 0.9
    for m in frames:
        if m.source is not None:
            assert m.source >= 0
    kinds = [e["type"] for e in events]
    assert "speech_start" in kinds
    jaw = [e["values"]["jaw_open"] - e["values"]["mouth_close"] for e in events if e["type"] == "motion"]
    assert np.ptp(jaw) > 0.5  # the named motion vector moves with the speech


def test_h264_video_decodes(server):
    async def go():
        async with StreamClient(server.ws) as client:
            await client.start(video={"codec": "h264"})
            media, _ = await collect(client, lambda m, e: len(video(m)) >= 10)
            return video(media)

    frames = run(go())
    assert frames[0].keyframe and frames[0].codec == p.VIDEO_CODECS["h264"]
    decoder = VideoDecoder()
    images = [img for m in frames for img in decoder.decode(m)]
    assert len(images) >= 9 and images[0].shape == (512, 512, 3)
    assert sum(len(m.payload) for m in frames[1:]) < 10 * 20_000  # far smaller than JPEG


def test_say_speaks_with_the_embedded_voice(server):
    async def go():
        async with StreamClient(server.ws) as client:
            await client.start()
            await client.say("Good morning, everyone.")
            media, events = await collect(client, lambda m, e: any(x["type"] == "speech_end" for x in e))
            return media, events

    media, events = run(go())
    pcm = np.concatenate([np.frombuffer(m.payload, "<i2") for m in media if m.kind == p.KIND_AUDIO])
    assert np.abs(pcm).max() > 3000  # speech came back
    assert [e["type"] for e in events if e["type"].startswith("speech")][:2] == ["speech_start", "speech_end"]


def test_interrupt_drops_the_rest_and_returns_to_rest(server):
    async def go():
        async with StreamClient(server.ws) as client:
            await client.start(motion_events=True)
            await client.say("This is a long answer that will be cut off well before it reaches its end, "
                             "because the listener has something to say.")  # fmt: skip
            await collect(client, lambda m, e: sum(x["type"] == "speech_start" for x in e) >= 1)
            await collect(client, lambda m, e: len(video(m)) >= 15)  # well into the speech
            await client.interrupt()
            media, events = await collect(client, lambda m, e: len(video(m)) >= 40)
            return media, events

    media, events = run(go())
    cut = next(e["frame"] for e in events if e["type"] == "interrupted")
    after = [m for m in media if m.index >= cut]
    assert all(m.source is None for m in after)
    assert not any(np.frombuffer(m.payload, "<i2").any() for m in after if m.kind == p.KIND_AUDIO)
    motion_events = [e for e in events if e["type"] == "motion"]
    opening = {e["frame"]: e["values"]["jaw_open"] - e["values"]["mouth_close"] for e in motion_events}
    rest = [opening[k] for k in sorted(opening) if k >= cut + 3]
    assert rest and max(rest) < -0.8  # the mouth closed (the photo's own smile closed) within 3 frames


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "bad_json"),
        ('["start"]', "bad_message"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "start", "version": 9}', "unsupported_version"),
        ('{"type": "start", "params": {"dynamic_scale": 7}}', "bad_params"),
        ('{"type": "start", "params": {"colour": 1}}', "bad_message"),
        ('{"type": "start", "portrait": "nobody"}', "unknown_portrait"),
        ('{"type": "start", "audio": {"sample_rate": 1000}}', "bad_sample_rate"),
        ('{"type": "flush"}', "not_started"),
        ('{"type": "params", "params": {"dynamic_scale": 1.2}}', "not_started"),
        ("x" * (p.MAX_TEXT_BYTES + 1), "message_too_large"),
        ("[" * 30_000 + "]" * 30_000, "bad_json"),  # was a RecursionError: internal, and the connection closed
        ('{"type": "say", "text": "\\ud800"}', "bad_message"),  # lone surrogate: lost in espeak, unanswered
        ('{"type": "start", "portrait": "\\udc00"}', "bad_message"),
        ('{"type": "start", "params": {"seed": -1}}', "bad_params"),  # was internal: numpy refused it
        ('{"type": "start", "params": {"seed": 18446744073709551616}}', "bad_params"),  # torch refused it
    ],
)
def test_bad_messages_before_start_get_their_code_and_the_connection_goes_on(server, message, code):
    async def go():
        async with StreamClient(server.ws) as client:
            await client.ws.send(message)
            _, events = await collect(client, lambda m, e: bool(e))
            ready = await client.start()  # the same connection still works
            return events[0], ready

    error, ready = run(go())
    assert error["type"] == "error" and error["code"] == code and not error["fatal"], error
    assert ready["type"] == "ready"


def test_bad_messages_during_a_session_leave_it_and_others_streaming(server):
    async def go():
        async with StreamClient(server.ws) as other, StreamClient(server.ws) as client:
            await other.start()
            await client.start()
            await client.ws.send(b"\x01\x02\x03")  # odd byte count for s16le
            await client.ws.send(b"\x00" * (p.MAX_AUDIO_BYTES + 2))
            await client.ws.send('{"type": "start"}')
            await client.say("hello", voice="xx-nonexistent")
            await client.ws.send('{"type": "say", "text": "   "}')
            codes = set()
            media, events = await collect(client, lambda m, e: len({x.get("code") for x in e} - {None}) >= 5)
            codes = {e["code"] for e in events if e["type"] == "error"}
            more, _ = await collect(client, lambda m, e: len(video(m)) >= 10)
            theirs, _ = await collect(other, lambda m, e: len(video(m)) >= 50)
            return codes, more, theirs

    codes, more, theirs = run(go())
    assert codes == {"bad_audio_chunk", "message_too_large", "already_started", "unknown_voice", "empty_text"}
    assert len(video(more)) >= 10
    frames = [m.index for m in video(theirs)]
    assert frames == list(range(frames[0], frames[0] + len(frames)))  # no gaps in the other session


def test_busy_when_full_and_free_again_after(server):
    async def go():
        async with StreamClient(server.ws) as a, StreamClient(server.ws) as b:
            await a.start()
            await b.start()
            async with StreamClient(server.ws) as c:
                with pytest.raises(StreamError) as err:
                    await c.start()
                assert err.value.code == "busy"
                await c.ws.wait_closed()
                assert c.ws.close_code == 1013
        for _ in range(50):  # the two sessions end when their clients leave
            if server.state.slots.used == 0:
                break
            await asyncio.sleep(0.1)
        async with StreamClient(server.ws) as d:
            return await d.start()

    assert run(go())["type"] == "ready"


def test_stop_ends_the_session_and_a_vanished_client_frees_its_place(server, sentence):
    async def go():
        async with StreamClient(server.ws) as client:
            await client.start()
            await client.stop()
            _, events = await collect(client, lambda m, e: any(x["type"] == "stopped" for x in e))
            await client.ws.wait_closed()
        ws = await websockets.connect(server.ws)
        await ws.send(json.dumps({"type": "start"}))
        await ws.recv()
        await ws.send(np.round(sentence[:3200] * 32767).astype("<i2").tobytes())
        ws.transport.abort()  # gone without a close frame
        for _ in range(100):
            if server.state.slots.used == 0:
                return events
            await asyncio.sleep(0.05)
        raise AssertionError("the vanished client's session was not ended")

    events = run(go())
    assert any(e["type"] == "stopped" for e in events)


def test_params_change_the_motion_mid_session(server):
    async def go():
        async with StreamClient(server.ws) as client:
            await client.start(motion_events=True, params={"dynamic_scale": 1.0})
            await client.set_params(dynamic_scale=1.6, motion_scale=0.5)
            _, events = await collect(client, lambda m, e: any(x["type"] == "params" for x in e))
            await client.set_params(dynamic_scale=0.1)
            await client.set_params(fps=30)
            await client.ws.send('{"type": "params", "params": {"motion_scale": "lots"}}')
            _, errors = await collect(client, lambda m, e: sum(x["type"] == "error" for x in e) >= 3)
            return events, [e for e in errors if e["type"] == "error"]

    events, errors = run(go())
    changed = next(e for e in events if e["type"] == "params")
    assert changed["params"] == {"dynamic_scale": 1.6, "motion_scale": 0.5} and changed["frame"] >= 0
    assert [e["code"] for e in errors] == ["bad_params", "bad_message", "bad_message"]
    assert "dynamic_scale must be in" in errors[0]["message"] and "fps" in errors[1]["message"]


def test_float_audio_beyond_full_scale_is_clipped_and_the_session_streams_on(server):
    """f32le samples far beyond [-1, 1] are clipped (3e38 overflowed the audio features into NaN
    motion, the render failed and the frames stopped for good); NaN is refused."""

    async def go():
        async with StreamClient(server.ws) as client:
            await client.start(audio={"format": "f32le", "channels": 2})
            await client.ws.send(np.full((3200, 2), 3e38, "<f4").tobytes())
            await client.ws.send(np.full((320, 2), np.nan, "<f4").tobytes())
            await client.flush()
            return await collect(client, lambda m, e: len(video(m)) >= 40)

    media, events = run(go())
    assert [e["code"] for e in events if e["type"] == "error"] == ["bad_audio_chunk"]
    assert len(video(media)) >= 40


async def _ended(server, session: str, timeout: float = 10) -> str | None:
    """The session's audit record's end reason, once it has one (None if not within ``timeout``)."""
    for _ in range(int(timeout / 0.05)):
        found = [s for s in server.state.audit.log.sessions(limit=50) if s.id == session]
        if found and found[0].end_reason is not None:
            return found[0].end_reason
        await asyncio.sleep(0.05)
    return None


def test_a_session_whose_frames_fail_ends_with_internal_not_frozen(server, monkeypatch):
    """A bug mid-stream (here the frames' events raise; RuntimeError was taken for a client that
    had gone, and the session froze with its socket open) ends the session: a fatal internal error,
    close code 1011, the audit record ended with it."""
    from server.control import Control

    events_of = Control.events

    def broken(self, frame):
        if frame.index == 5:
            raise RuntimeError("a bug")
        return events_of(self, frame)

    monkeypatch.setattr(Control, "events", broken)

    async def go():
        async with StreamClient(server.ws) as client:
            ready = await client.start()
            media, events = await collect(client, lambda m, e: any(x["type"] == "error" for x in e))
            await asyncio.wait_for(client.ws.wait_closed(), 10)
            return ready, events, client.ws.close_code, await _ended(server, ready["session"])

    ready, events, close_code, reason = run(go())
    error = events[-1]
    assert (error["type"], error["code"], error["fatal"]) == ("error", "internal", True)
    assert close_code == 1011 and reason == "error: internal"


def test_a_say_that_fails_ends_the_session_with_internal_not_silence(server, monkeypatch):
    """A bug in a ``say`` (synthesised in the background) was lost with its task: no answer at all.
    Now it ends the session like any other failure."""
    from streaming.live import LiveSession

    async def broken(self, text, voice="en-us"):
        raise ValueError("a bug")

    monkeypatch.setattr(LiveSession, "say", broken)

    async def go():
        async with StreamClient(server.ws) as client:
            ready = await client.start()
            await client.say("Hello.")
            media, events = await collect(client, lambda m, e: any(x["type"] == "error" for x in e))
            await asyncio.wait_for(client.ws.wait_closed(), 10)
            return events, client.ws.close_code, await _ended(server, ready["session"])

    events, close_code, reason = run(go())
    assert [(e["code"], e["fatal"]) for e in events if e["type"] == "error"] == [("internal", True)]
    assert close_code == 1011 and reason == "error: internal"


def test_a_recorded_session_downloads_as_mp4_during_and_after(server, sentence, tmp_path):
    async def go():
        async with StreamClient(server.ws) as client, httpx.AsyncClient(base_url=server.http) as http:
            ready = await client.start(record=True)
            sender = asyncio.create_task(client.stream_audio(sentence, realtime=True))
            first, _ = await collect(client, lambda m, e: len(video(m)) >= 75)  # 3 s: whole fragments exist
            during = await http.get(ready["recording"])
            await sender
            await client.stop()
            media, events = await collect(client, lambda m, e: any(x["type"] == "stopped" for x in e))
            after = await http.get(ready["recording"])
            missing = await http.get("/v1/sessions/nobody/recording.mp4")
            return ready, during, after, missing, events, first

    ready, during, after, missing, events, first = run(go())
    assert ready["recording"] == f"/v1/sessions/{ready['session']}/recording.mp4"
    assert during.headers["x-recording-complete"] == "false" and after.headers["x-recording-complete"] == "true"
    stopped = next(e for e in events if e["type"] == "stopped")
    counts = []
    for name, r in (("during", during), ("after", after)):
        path = tmp_path / f"{name}.mp4"
        path.write_bytes(r.content)
        with av.open(str(path)) as c:
            assert c.streams.video[0].width == 512 and c.streams.audio
            counts.append(sum(1 for _ in c.decode(video=0)))
    assert 25 <= counts[0] < counts[1] == stopped["frames"]
    played = decode_audio(tmp_path / "after.mp4")
    assert np.abs(played).max() > 0.1  # the sentence is in it
    # the JPEG frames sent and the recording carry the session's watermark; the detector finds the session
    payload = int(ready["watermark"], 16)
    jpegs = [cv2.imdecode(np.frombuffer(m.payload, np.uint8), cv2.IMREAD_COLOR)[..., ::-1] for m in video(first)]
    assert detect(jpegs).payload == payload
    found = CliRunner().invoke(main, ["watermark", "detect", str(tmp_path / "after.mp4"),
                                      "--db", str(server.state.audit.log.path), "--json"])  # fmt: skip
    assert found.exit_code == 0, found.output
    answer = json.loads(found.output)
    assert answer["payload"] == ready["watermark"] and answer["session"]["id"] == ready["session"]
    assert answer["session"]["transport"] == "websocket" and answer["session"]["requester"] == "dev"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "no_recording"


def fail_after(monkeypatch, frames: int) -> list[int]:
    """Make the sessions whose watermark is put in the returned list fail at their frame ``frames``
    (a bug's stand-in: an exception inside the session while it streams), whether the session is
    in this process or its frames come from a worker process (``ProxySession``: an exception
    raised in the worker reaches it the same way, tests/server/workers/test_pool.py)."""
    from server.proxy import ProxySession
    from streaming.session import Session

    doomed = []

    def failing(next_frame):
        def fail(self):
            if self.animator.marks.watermark in doomed and self.frames_out >= frames:
                raise ValueError("injected failure")
            return next_frame(self)

        return fail

    for cls in (Session, ProxySession):
        monkeypatch.setattr(cls, "next_frame", failing(cls.next_frame))
    return doomed


def test_a_session_that_fails_while_streaming_ends_saying_so_instead_of_freezing(server, monkeypatch):
    """An exception in the frame pump used to end the pump alone: the frames stopped, and the
    connection, its place and its audit record stayed open until the client left."""
    doomed = fail_after(monkeypatch, 10)

    async def go():
        async with StreamClient(server.ws) as other, StreamClient(server.ws) as client:
            await other.start()
            ready = await client.start()
            doomed.append(int(ready["watermark"], 16))
            media, events = await collect(client, lambda m, e: False)  # until the server closes it
            theirs, _ = await collect(other, lambda m, e: len(video(m)) >= 25)
            return ready, media, events, client.ws.close_code, theirs

    ready, media, events, close_code, theirs = run(go())
    assert [(e["code"], e["fatal"]) for e in events if e["type"] == "error"] == [("internal", True)]
    assert close_code == 1011 and len(video(media)) == 10
    assert len(video(theirs)) >= 25  # the other session goes on
    ended = next(s for s in server.state.audit.log.sessions(limit=20) if s.id == ready["session"])
    assert (ended.end_reason, ended.frames) == ("error: internal", 10)
    assert eventually(lambda: server.state.slots.used == 0)  # the other's place comes back as it closes


def test_a_client_that_stops_reading_is_a_slow_consumer_and_its_place_comes_back(server, monkeypatch):
    """It keeps its connection but reads nothing: once the sockets' buffers are full, frames wait
    for it (before, for ever: the session, its place and its audit record stayed open); after
    ``SEND_TIMEOUT_S`` (here 1 s) the session ends as ``slow_consumer``."""
    import server.ws as ws_module

    monkeypatch.setattr(ws_module, "SEND_TIMEOUT_S", 1.0)

    async def go():
        ws = await websockets.connect(server.ws, max_queue=2, ping_interval=None, compression=None)
        try:
            await ws.send(json.dumps({"type": "start", "video": {"quality": 100}}))
            session_id = json.loads(await ws.recv())["session"]
            for _ in range(300):
                found = next(s for s in server.state.audit.log.sessions(limit=20) if s.id == session_id)
                if found.ended is not None and server.state.slots.used == 0:
                    return found
                await asyncio.sleep(0.1)
            raise AssertionError("the session of a client that stopped reading was not ended in 30 s")
        finally:
            ws.transport.abort()

    found = run(go())
    assert found.end_reason == "error: slow_consumer" and found.frames > 0
    assert 'code="slow_consumer"' in httpx.get(f"{server.http}/metrics").text
