"""Audio by position on the frames' timeline, with where it came from."""

import numpy as np
import pytest

from streaming.timeline import AudioTimeline


def ramp(n: int, start: float = 0.0) -> np.ndarray:
    return (start + np.arange(n)).astype(np.float32)


def test_reads_back_what_was_written_and_zeros_in_gaps():
    tl = AudioTimeline()
    tl.write(0, ramp(100), source=0.0, speech=True)
    tl.write(150, ramp(50, 1000), source=None, speech=False)
    np.testing.assert_array_equal(tl.read(90, 110), np.r_[ramp(10, 90), np.zeros(10)])
    np.testing.assert_array_equal(tl.read(140, 160), np.r_[np.zeros(10), ramp(10, 1000)])
    np.testing.assert_array_equal(tl.read(195, 210), np.r_[ramp(5, 1045), np.zeros(10)])


def test_source_and_speech_by_position():
    tl = AudioTimeline()
    tl.write(0, ramp(16000), source=2.0, speech=True)
    tl.write(16000, ramp(640), source=None, speech=False)
    assert tl.source_at(8000) == pytest.approx(2.5)
    assert tl.source_at(16100) is None and not tl.span_at(16100).speech
    assert tl.span_at(20000) is None


def test_reading_forgets_the_past():
    tl = AudioTimeline()
    for k in range(100):
        tl.write(k * 640, ramp(640), source=k * 0.04, speech=False)
        tl.read(k * 640, (k + 1) * 640)
    assert len(tl._samples) <= 640 and len(tl._spans) <= 1
    with pytest.raises(ValueError):
        tl.write(0, ramp(10), source=None, speech=False)


def test_clear_from_erases_queued_audio():
    tl = AudioTimeline()
    tl.write(0, ramp(1000), source=0.0, speech=True)
    tl.clear_from(400)
    assert tl.end == 400 and tl.span_at(399).end == 400 and tl.span_at(500) is None
    np.testing.assert_array_equal(tl.read(390, 410), np.r_[ramp(10, 390), np.zeros(10)])
