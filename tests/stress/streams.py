"""Live sessions under stress: read what a session sends for a while, keep a witness session
streaming alongside, and tally the cases a test tries with the problems it finds.

Every wait here is bounded in time; a check that fails is a *problem* (a string saying what went
wrong), collected per test and recorded in the tally before the test asserts there were none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

import numpy as np
import websockets

from server import protocol as p
from server.client import StreamClient
from tests.stress.tally import record

FPS = 25
MIN_RATE = 0.5  # a session "keeps delivering frames" when at least this share of the nominal rate arrives
WITNESS_MAX_S = 600  # a witness session streams for at most this long


@dataclass
class Received:
    """What a session sent in a window: video frames, the audio that came with them, events."""

    video: list[p.Media] = field(default_factory=list)
    audio: list[p.Media] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    closed: bool = False  # the connection closed during the window

    def add(self, raw: bytes | str) -> None:
        if isinstance(raw, bytes):
            media = p.unpack_media(raw)
            (self.video if media.kind == p.KIND_VIDEO else self.audio).append(media)
        else:
            self.events.append({**json.loads(raw), "received": time.monotonic()})

    def errors(self) -> list[str]:
        return [e["code"] for e in self.events if e["type"] == "error"]

    def stats(self) -> list[dict]:
        return [e for e in self.events if e["type"] == "stats"]

    def sources(self) -> list[float]:
        """The seconds of the client's own audio the frames show."""
        return [m.source for m in self.video if m.source is not None]

    def gaps(self) -> list[tuple[int, int]]:
        """Places where the frame index did not go up by one."""
        index = [m.index for m in self.video]
        return [(a, b) for a, b in zip(index, index[1:], strict=False) if b != a + 1]

    def pcm(self) -> np.ndarray:
        return np.concatenate([np.frombuffer(m.payload, "<i2") for m in self.audio] or [np.zeros(0, np.int16)])


async def read_for(client: StreamClient, seconds: float, into: Received | None = None) -> Received:
    """Everything ``client``'s session sends for ``seconds`` of wall time."""
    return await read_until(client, lambda got: False, seconds, into)


async def read_until(client: StreamClient, done, timeout: float, into: Received | None = None) -> Received:
    """Read until ``done(received)`` is true or ``timeout`` seconds pass (check ``done`` again after)."""
    got = into or Received()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done(got) and (left := deadline - loop.time()) > 0:
        try:
            got.add(await asyncio.wait_for(client.ws.recv(), left))
        except TimeoutError:
            break
        except websockets.ConnectionClosed:
            got.closed = True
            break
    return got


def frame_problems(name: str, got: Received, seconds: float, rate: float = MIN_RATE) -> list[str]:
    """The session kept delivering frames over ``seconds``: enough of them, numbered without a gap."""
    problems = []
    if len(got.video) < rate * FPS * seconds:
        problems.append(f"{name}: {len(got.video)} frames in {seconds:.1f} s (fewer than {rate:.0%} of {FPS} fps)")
    if got.gaps():
        problems.append(f"{name}: frame numbers jump at {got.gaps()[:5]}")
    if got.closed:
        problems.append(f"{name}: the connection closed")
    return problems


class Witness:
    """Another session streaming alongside the abuse (speech in a loop at real-time pace); its frames
    must keep coming, numbered without a gap, whatever happens to the session under test."""

    def __init__(self, url: str, speech: np.ndarray, **start) -> None:
        self.client = StreamClient(url)
        self.speech = speech
        self.start_fields = start
        self.got = Received()
        self._tasks: list[asyncio.Task] = []
        self._t0 = 0.0

    async def __aenter__(self) -> Witness:
        await self.client.__aenter__()
        await self.client.start(**self.start_fields)
        self._t0 = asyncio.get_running_loop().time()
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._speak())]
        return self

    async def __aexit__(self, *exc_info) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task
        await self.client.__aexit__(*exc_info)

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while asyncio.get_running_loop().time() < self._t0 + WITNESS_MAX_S:
                self.got.add(await self.client.ws.recv())

    async def _speak(self) -> None:
        pause = np.zeros(8000, np.float32)
        while asyncio.get_running_loop().time() < self._t0 + WITNESS_MAX_S:
            await self.client.stream_audio(np.concatenate([self.speech, pause]))

    def stalls(self) -> int:
        """Times its clock moved on because frames were late, after its first second (start-up)."""
        stats = self.got.stats()
        return stats[-1]["stalls"] - stats[0]["stalls"] if stats else 0

    def problems(self) -> list[str]:
        seconds = asyncio.get_running_loop().time() - self._t0
        return frame_problems("the other session", self.got, seconds - 1.0)  # a second's grace for its start


class Cases:
    """The cases a test tries, and the problems found among them."""

    def __init__(self) -> None:
        self.tried = 0
        self.problems: list[str] = []
        self.detail: dict = {}  # figures worth keeping beside the count (recorded, never asserted)

    def check(self, problems: list[str]) -> None:
        """One case tried; ``problems`` what went wrong with it (empty: answered as it should be)."""
        self.tried += 1
        self.problems += problems


@contextlib.contextmanager
def tallied(category: str):
    """Collect a test's ``Cases``; record them in the tally (also when the test crashes), then assert
    that no case had a problem."""
    cases = Cases()
    try:
        yield cases
    except BaseException as err:
        cases.problems.append(f"the test crashed: {err!r}")
        raise
    finally:
        record(category, cases.tried, len(cases.problems), problems=cases.problems[:20], **cases.detail)
    assert not cases.problems, "\n".join(cases.problems)
