"""A WebRTC peer in a process of its own, for a test to SIGKILL: it offers a microphone (silence)
and receives the face; once the first video frame has come it prints ``session ID`` and waits.

    python -m tests.stress.peer HTTP_URL PORTRAIT
"""

from __future__ import annotations

import asyncio
import fractions
import sys
import time

import av
import numpy as np
from aiortc import MediaStreamTrack

from tests.server.harness import offer_peer

FPS = 25
LIFE_S = 300  # it lives this long at most


class Silence(MediaStreamTrack):
    """48 kHz stereo s16 silence, 20 ms a frame, in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.sent, self.t0 = 0, time.monotonic()

    async def recv(self) -> av.AudioFrame:
        await asyncio.sleep(max(0.0, self.t0 + self.sent * 0.02 - time.monotonic()))
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1920), np.int16), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.sent * 960, fractions.Fraction(1, 48000)
        self.sent += 1
        return frame


async def main(http: str, portrait: str) -> None:
    peer = await offer_peer(http, Silence(), portrait=portrait)
    peer.response.raise_for_status()
    video = await peer.track("video")
    await video.recv()
    print("session", peer.response.json()["session"], flush=True)
    for _ in range(FPS * LIFE_S):  # keep receiving until killed (or for LIFE_S at most)
        await video.recv()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), LIFE_S))
