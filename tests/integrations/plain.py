"""The frames a plain ``streaming`` session makes of the same speech, to compare an adapter's with.

The session is built as every session is (``server.proxy.build_session``) with the adapter's
parameters and watermark, and driven without a clock: ``idle`` frames of silence, then the
speech (16 kHz, its timings placed first), then frames until ``total``. A session's frames
depend on the speech and on the frame it starts at, so ``start_like`` finds the number of idle
frames after which the speech starts at the same frame as in the adapter's run.
"""

from __future__ import annotations

import numpy as np

from server.proxy import build_session
from server.state import split_params
from sonic_rt.audio import timings
from sonic_rt.provenance.marks import Marks


def plain_frames(identity, shipped, config, watermark, speech16k, marks, idle: int, total: int):
    motion, video = split_params(config.params)
    session = build_session(identity, *shipped, motion, video, Marks(watermark, config.label))
    frames = [session.next_frame() for _ in range(idle)]
    if marks is not None:
        session.place_timings(timings.parse(marks["format"], marks["marks"]), 0.0)
    session.push_audio(speech16k)
    session.flush()
    while len(frames) < total:
        frames.append(session.next_frame())
    return frames


def first_speech(frames) -> int:
    return next(i for i, f in enumerate(frames) if f.source is not None)


def start_like(identity, shipped, config, watermark, speech16k, marks, first: int, total: int):
    """The plain session's frames whose speech starts at frame ``first``, as in the adapter's run."""
    probe = plain_frames(identity, shipped, config, watermark, speech16k, marks, 1, first + 12)
    lead = first_speech(probe) - 1  # frames from the push to the first frame showing it
    frames = plain_frames(identity, shipped, config, watermark, speech16k, marks, max(0, first - lead), total)
    assert first_speech(frames) == first, "the speech starts at another frame: the adapter's run was not like this"
    return frames


def int16(samples: np.ndarray) -> np.ndarray:
    return np.round(np.clip(samples, -1, 1) * 32767).astype(np.int16)
