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
import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

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
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(Silence())
    pc.addTransceiver("video", direction="recvonly")
    pc.createDataChannel("control")
    tracks = {}
    pc.on("track", lambda track: tracks.__setitem__(track.kind, track))
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{http}/v1/webrtc/offer", timeout=30, json={
            "sdp": pc.localDescription.sdp, "type": "offer", "portrait": portrait})  # fmt: skip
    r.raise_for_status()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.json()["sdp"], type=r.json()["type"]))
    for _ in range(1000):  # the track comes with the answer
        if "video" in tracks:
            break
        await asyncio.sleep(0.01)
    await tracks["video"].recv()
    print("session", r.json()["session"], flush=True)
    for _ in range(FPS * LIFE_S):  # keep receiving until killed (or for LIFE_S at most)
        await tracks["video"].recv()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), LIFE_S))
