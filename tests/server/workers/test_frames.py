"""A frame in shared memory: written by one mapping, read by another, nothing left on disk."""

from __future__ import annotations

import os

import numpy as np

from server.workers.frames import FrameBuffer


def test_a_frame_written_through_one_mapping_is_read_through_the_other_and_the_name_goes():
    ours = FrameBuffer.create(64)
    theirs = FrameBuffer(ours.path, 64)  # as the worker maps it, by name
    ours.unlink()
    assert not os.path.exists(ours.path)  # the memory lives on in the mappings only
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    theirs.write(image)
    copy = ours.read()
    theirs.write(np.zeros_like(image))
    assert np.array_equal(copy, image)  # the copy is the reader's own
    assert not ours.read().any()
    theirs.close()
    ours.close()
    ours.close()  # twice is harmless
