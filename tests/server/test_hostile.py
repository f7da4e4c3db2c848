"""Hostile volume (issue 20) through real servers on loopback: batch work that arrives while live
sessions stream waits its turn in the job process, and takes none of their frames.

The figures (frame rates, gaps and latency under each attack, and every attack at once) are
``bench/bench_hostile.py``'s; these tests check what does not depend on the machine's speed: a
render is queued, not refused, behind live sessions and is done; one beyond the queue is ``busy``, and
so is an upload then, before its body is read, as is one beyond the uploads the jobs have places
for while those are read; a witness session streaming through an upload flood
loses no frame.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import av
import httpx
import numpy as np
import pytest

from server import protocol as p
from server.client import StreamClient
from server.state import Settings
from tests.conftest import png_bytes
from tests.server.conftest import LiveServer, run, unrated

FPS = 25
LONG = ("A render that takes a while: this sentence goes on for some time, so that the job process is still "
        "busy with it when the next requests come in, one to wait in the queue and one to be refused.")  # fmt: skip
SHORT = "Hello there."


@pytest.fixture(scope="module")
def queued():
    """One job process and a queue of one; two live places."""
    settings = Settings(max_sessions=2, workers=1, jobs=1, job_queue=1, limits=unrated())
    with LiveServer(settings) as server:
        yield server


async def until(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s")
        await asyncio.sleep(0.02)


async def video_frames(client: StreamClient, indices: list[int]) -> None:
    """Read the stream until it ends, keeping the video frames' indices."""
    async for item in client:
        if isinstance(item, p.Media) and item.kind == p.KIND_VIDEO:
            indices.append(item.index)


def mp4_frames(response: httpx.Response, tmp_path, name: str) -> int:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "video/mp4"
    path = tmp_path / name
    path.write_bytes(response.content)
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


async def open_upload(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An upload that sends its headers and a little of its body; the rest of the body never comes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /v1/portraits HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/form-data; "
                 "boundary=b\r\nContent-Length: 1000000\r\n\r\n--b\r\n".encode())  # fmt: skip
    await writer.drain()
    return reader, writer


async def answered(reader: asyncio.StreamReader) -> bool:
    """Whether the server has sent anything (or closed) on a connection, within 0.1 s."""
    try:
        await asyncio.wait_for(reader.read(1), 0.1)
    except TimeoutError:
        return False
    return True


async def unread_upload(port: int) -> tuple[int, str]:
    """An upload that sends its headers and a little of its body, then waits: what it is told."""
    reader, writer = await open_upload(port)
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)[1])
        body = json.loads(await reader.readexactly(length))
        return int(head.split()[1]), body["error"]["code"]
    finally:
        writer.close()


def test_a_render_queued_behind_live_sessions_is_done_when_they_free_up(queued, sentence, tmp_path):
    jobs, slots = queued.state.jobs, queued.state.slots
    speech = np.tile(sentence, 3)[: 6 * 16000]
    renders = f"{queued.http}/v1/renders"

    async def go():
        async with StreamClient(queued.ws) as a, StreamClient(queued.ws) as b, \
                httpx.AsyncClient(timeout=300) as http:  # fmt: skip
            for client in (a, b):
                await client.start()
            assert slots.used == slots.capacity  # every live place taken
            frames = {id(c): [] for c in (a, b)}
            readers = [asyncio.create_task(video_frames(c, frames[id(c)])) for c in (a, b)]
            senders = [asyncio.create_task(c.stream_audio(speech, 20)) for c in (a, b)]
            first = asyncio.create_task(http.post(renders, data={"text": LONG}))
            await until(lambda: jobs.running == 1)  # accepted, not busy: a render takes no live place
            second = asyncio.create_task(http.post(renders, data={"text": SHORT}))
            await until(lambda: jobs.waiting == 1)
            beyond = await http.post(renders, data={"text": SHORT})
            told = (beyond.status_code, beyond.json()["error"]["code"]), await unread_upload(queued.port)
            held = (jobs.running, jobs.waiting, slots.used)  # answered at once: the others still there
            await asyncio.gather(*senders)
            for client in (a, b):
                await client.stop()
            await asyncio.gather(*readers)
            return told, held, await first, await second, [frames[id(c)] for c in (a, b)]

    told, held, first, second, streamed = run(go(), timeout=600)
    assert told == ((503, "busy"), (503, "busy"))  # a render, and an upload answered before its body came
    assert held == (1, 1, 2)
    assert mp4_frames(first, tmp_path, "first.mp4") == int(first.headers["X-Frames"]) > 100
    assert mp4_frames(second, tmp_path, "second.mp4") == int(second.headers["X-Frames"]) > 0
    for indices in streamed:  # the sessions streamed on meanwhile
        assert indices == list(range(len(indices))) and len(indices) > FPS
    assert (jobs.running, jobs.waiting) == (0, 0)


def test_uploads_beyond_the_jobs_places_are_busy_before_their_body_while_the_first_are_read(queued):
    jobs = queued.state.jobs

    async def go():
        held = [await open_upload(queued.port) for _ in range(jobs.places)]  # one to run, one to queue
        try:
            await until(lambda: jobs.requests == jobs.places, 10)
            t0 = time.monotonic()
            told = await unread_upload(queued.port)
            seconds = time.monotonic() - t0
            still = jobs.requests, [await answered(reader) for reader, _ in held]
        finally:
            for _, writer in held:
                writer.close()
        await until(lambda: jobs.requests == 0, 10)  # the places freed when their clients went
        return told, seconds, still

    told, seconds, still = run(go(), timeout=60)
    assert told == (503, "busy") and seconds < 5  # answered at once, not when the others are done
    assert still == (jobs.places, [False] * jobs.places)  # the first ones still waiting for their body, unanswered
    assert (jobs.running, jobs.waiting) == (0, 0)


def test_a_witness_session_keeps_its_frames_during_an_upload_flood(server, astronaut, sentence):
    seconds, uploads, rounds = 4.0, 12, 3
    speech = np.tile(sentence, 2)[: int(seconds * 16000)]
    made = iter(range(10_000))

    def image() -> bytes:  # another astronaut each time: one pixel changed, so each upload is a new enrolment
        k = next(made)
        changed = astronaut.copy()
        changed[1, k, 0] ^= 0x55
        return png_bytes(changed)

    async def flood(http: httpx.AsyncClient, streaming: asyncio.Task) -> list[tuple[int, str]]:
        answers = []
        for _ in range(rounds):  # while the witness streams, a few rounds at most
            if streaming.done():
                break
            images = [image() for _ in range(uploads)]
            responses = await asyncio.gather(*(
                http.post(f"{server.http}/v1/portraits", files={"image": ("a.png", data)}, data={"consent": "true"})
                for data in images))  # fmt: skip
            answers += [(r.status_code, "ok" if r.status_code == 200 else r.json()["error"]["code"]) for r in responses]
        return answers

    async def go():
        async with StreamClient(server.ws) as witness, httpx.AsyncClient(timeout=300) as http:
            await witness.start()
            sender = asyncio.create_task(witness.stream_audio(speech, 20, realtime=True))
            flooding = asyncio.create_task(flood(http, sender))
            indices, shown, deadline = [], -1.0, None
            async for item in witness:
                if not (isinstance(item, p.Media) and item.kind == p.KIND_VIDEO):
                    continue
                indices.append(item.index)
                shown = max(shown, item.source if item.source is not None else -1.0)
                if sender.done():
                    deadline = deadline or time.monotonic() + 30
                    if shown >= seconds - 0.1 or time.monotonic() > deadline:
                        break  # the frame showing the end of the audio (or the bound)
            answers = await flooding
            await witness.stop()
            return indices, answers

    indices, answers = run(go(), timeout=300)
    assert {code for _, code in answers} <= {"ok", "busy"}  # enrolled, or refused at once by the full queue
    assert any(code == "ok" for _, code in answers)
    assert indices == list(range(len(indices)))  # no frame missing
    assert len(indices) >= seconds * FPS - 5  # every frame of the audio streamed came
