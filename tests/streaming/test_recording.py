"""A live session's recording: playable while it grows, complete when closed, bounded in length."""

import av
import numpy as np

from streaming.recording import Recording
from streaming.session import OutFrame


def frame(i: int, size: int = 64) -> OutFrame:
    t = np.arange(640) / 16000 + i * 0.04
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    image = np.full((size, size, 3), (i * 9) % 255, np.uint8)
    return OutFrame(index=i, pts=i * 0.04, image=image, audio=tone, motion=np.zeros(15), source=None, speech=False)


def decoded(path, length=None) -> tuple[int, float]:
    if length is not None:
        cut = path.with_suffix(".part.mp4")
        cut.write_bytes(path.read_bytes()[:length])
        path = cut
    with av.open(str(path)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    return frames, samples / 48000


def test_readable_while_recording_and_whole_after(tmp_path):
    rec = Recording(tmp_path / "s.mp4", 64, 25)
    for i in range(80):
        rec.add(frame(i))
    frames, seconds = decoded(rec.path, rec.readable())
    assert 0 < frames < 80 and abs(seconds - frames / 25) < 0.1  # whole fragments, their audio with them
    rec.close()
    rec.add(frame(80))  # after the end: ignored
    frames, seconds = decoded(rec.path, rec.readable())
    assert frames == 80 and abs(seconds - 3.2) < 0.05 and rec.seconds == 3.2


def test_recording_stops_at_its_limit(tmp_path):
    rec = Recording(tmp_path / "s.mp4", 64, 25, max_seconds=1)
    for i in range(40):
        rec.add(frame(i))
    assert rec.closed and rec.frames == 25
    assert decoded(rec.path)[0] == 25
    rec.discard()
    assert not rec.path.exists()
