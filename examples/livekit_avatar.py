"""A LiveKit agent with a sonic-rt avatar, offline: an ``AgentSession`` speaking through the face.

    python examples/livekit_avatar.py -o avatar.mp4 --say "Hello! I am a talking portrait." --interrupt

The agent's TTS is sonic-rt's embedded espeak-ng (``EspeakTTS``); ``SonicRTAvatarSession`` makes
the avatar the session's audio output and publishes its video and audio in the room, as the
agent's own participant. No LiveKit server runs here, so the room is an ``OfflineRoom``: the
tracks go through LiveKit's real native media sources and are read back and written to the MP4.
``--interrupt`` interrupts the last sentence half-way (the agent's barge-in), as a user would.
``--url ws://HOST:PORT/v1/stream --api-key KEY`` animates on a ``sonic-rt serve`` instead.

In a real LiveKit room the same three lines go into your agent's entrypoint:

    server = AgentServer()

    @server.rtc_session()
    async def entrypoint(ctx: JobContext):
        session = AgentSession(stt=..., llm=..., tts=...)
        avatar = SonicRTAvatarSession(portrait="sample:astronaut", params={"seed": 3})
        await avatar.start(session, room=ctx.room)   # before session.start
        await session.start(Agent(instructions="..."), room=ctx.room)

    cli.run_app(server)                               # python agent.py dev, with LIVEKIT_URL etc. set

The avatar publishes as the agent (``room.local_participant``); the agent's own audio track is
not needed (``RoomOptions(audio_output=False)`` keeps the session from publishing one too).
"""

from __future__ import annotations

import argparse
import asyncio

from livekit.agents import Agent, AgentSession

from integrations.livekit import SonicRTAvatarSession
from integrations.livekit_room import OfflineRoom
from integrations.livekit_tts import EspeakTTS
from sonic_rt.config import GeometryParams

IDLE_S = 1.0
SAY_TIMEOUT_S = 60.0


async def main(args: argparse.Namespace) -> None:
    room = OfflineRoom(record=args.output)
    session = AgentSession(tts=EspeakTTS(voice=args.voice))
    avatar = SonicRTAvatarSession(portrait=args.portrait, params={"seed": args.seed}, url=args.url,
                                  api_key=args.api_key, geometry=GeometryParams(min_resolution=args.size),
                                  agent="livekit example")  # fmt: skip
    await avatar.start(session, room=room)
    await session.start(Agent(instructions="You are a talking portrait."))
    try:
        for i, text in enumerate(args.say):
            await asyncio.sleep(IDLE_S)
            handle = session.say(text)
            if args.interrupt and i == len(args.say) - 1:
                await asyncio.sleep(IDLE_S + 0.5)  # a second into the sentence (after the face's latency)
                await asyncio.wait_for(session.interrupt(), SAY_TIMEOUT_S)
            await asyncio.wait_for(handle.wait_for_playout(), SAY_TIMEOUT_S)
            print(f"said {text!r}{' (interrupted)' if handle.interrupted else ''}")
        await asyncio.sleep(IDLE_S)
    finally:
        await session.aclose()
        await avatar.aclose()
        await room.aclose()
    watermark = avatar.generator.driver.watermark
    print(f"wrote {args.output}: {len(room.video)} frames published, watermark {watermark:08x}; "
          f"latency per frame: {avatar.generator.driver.latency.summary()}")  # fmt: skip


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="livekit_avatar.mp4")
    ap.add_argument("--say", action="append", help="a sentence to speak (repeatable)")
    ap.add_argument("--interrupt", action="store_true", help="interrupt the last sentence half-way")
    ap.add_argument("--voice", default="en-us")
    ap.add_argument("--portrait", default="sample:astronaut")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=512, help="frame side in pixels (in this process)")
    ap.add_argument("--url", help="a sonic-rt server's ws://HOST:PORT/v1/stream (default: animate here)")
    ap.add_argument("--api-key")
    args = ap.parse_args()
    args.say = args.say or ["Hello! I am a talking portrait, animated on a CPU.", "Nice to meet you, and goodbye."]
    asyncio.run(main(args))
