"""The avatar driver on a session in this process: its record and watermark, bad input, timings, turns."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from integrations.backend import AvatarConfig
from integrations.driver import AvatarDriver, Timings
from integrations.factory import open_backend
from server.state import BadParams
from sonic_rt.errors import BadAudioChunk, BadSampleRate, ConsentRequired
from sonic_rt.provenance import watermark
from sonic_rt.provenance.audit import AuditLog
from tests.integrations.conftest import chunks

TIMEOUT_S = 120


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT_S))


def test_bad_configs_are_refused_at_once():
    with pytest.raises(BadParams, match="dynamic_scale"):
        AvatarConfig(params={"dynamic_scale": 9.0})
    with pytest.raises(BadParams, match="colour"):
        AvatarConfig(params={"colour": 1})
    with pytest.raises(ValueError, match="ws://"):
        AvatarConfig(url="http://127.0.0.1:8000/v1/stream")
    with pytest.raises(ValueError, match="transport"):
        open_backend(AvatarConfig(), "gstreamer")


def test_a_portrait_file_needs_consent(config, tmp_path, astronaut):
    from tests.conftest import png_bytes

    path = tmp_path / "face.png"
    path.write_bytes(png_bytes(astronaut))
    driver = AvatarDriver(open_backend(config.replace(portrait=str(path)), "pipecat"))
    with pytest.raises(ConsentRequired):
        run(driver.start())
    assert not AuditLog(config.audit_db).sessions()  # refused before anything was recorded


def test_the_session_is_on_record_with_the_agent_and_its_frames_carry_the_watermark(config, pcm):
    async def main():
        driver = AvatarDriver(open_backend(config, "livekit"))
        await driver.start()
        with pytest.raises(BadAudioChunk):
            driver.speak(pcm.astype(np.float64), 16000)  # bad input fails at the call
        with pytest.raises(BadSampleRate):
            driver.speak(pcm, 1000)
        images, turn_ends = [], []
        async for frame, played in driver.frames():
            images.append(frame.image)
            if len(images) == 5:
                for piece in chunks(pcm):
                    driver.speak(piece, 16000)
                driver.end_turn()
            if played.finished is not None:
                turn_ends.append(played.finished)
            if len(images) >= 80:
                break
        await driver.aclose()
        await driver.aclose()  # twice is harmless
        return driver, images, turn_ends

    driver, images, turn_ends = run(main())
    assert [e.position for e in turn_ends] == [pytest.approx(len(pcm) / 16000, abs=1e-4)]
    assert watermark.detect(images).payload == driver.watermark
    (record,) = AuditLog(config.audit_db).sessions()
    assert record.transport == "livekit" and record.requester == "test-agent"
    assert record.watermark == driver.watermark and record.end_reason == "stopped"
    assert record.frames >= 80 and record.portrait == "sample:astronaut"


def test_timings_go_to_the_session_where_the_chunk_starts(config, pcm, speech, monkeypatch):
    from integrations.espeak import espeak_timings
    from integrations.local import LocalBackend

    placed = []
    original = LocalBackend.place_timings

    async def spy(self, fmt, marks, end_ms, offset):
        placed.append((fmt, len(marks), offset))
        await original(self, fmt, marks, end_ms, offset)

    monkeypatch.setattr(LocalBackend, "place_timings", spy)
    marks = espeak_timings(speech)

    async def main():
        driver = AvatarDriver(open_backend(config, "pipecat"))
        await driver.start()
        for _ in range(2):
            for i, piece in enumerate(chunks(pcm, 960)):
                driver.speak(np.repeat(piece, 3)[::2], 24000, timings=Timings.read(marks) if i == 0 else None)
            driver.end_turn()
        ends = []
        async for _, played in driver.frames():
            ends += [played.finished] if played.finished else []
            if len(ends) == 2:
                break
        await driver.aclose()
        return ends

    ends = run(main())
    turn_s = len(pcm) / 16000
    assert [p[:2] for p in placed] == [("espeak", len(marks["marks"]))] * 2
    assert placed[0][2] == 0.0 and placed[1][2] == pytest.approx(turn_s, abs=0.002)  # the second turn's start
    assert [e.position for e in ends] == [pytest.approx(turn_s, abs=0.002)] * 2
    with pytest.raises(ValueError, match="format"):
        Timings.read({"format": "klingon", "marks": []})
