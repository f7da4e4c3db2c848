"""Per-frame latency: from when the frame's speech could first have been shown to the frame going out."""

import pytest

from integrations.latency import Latency


def test_speech_handed_over_in_real_time_counts_from_its_arrival():
    latency = Latency()
    latency.turn(0.0, 100.0)
    for k in range(10):  # 40 ms chunks, each handed over as it is spoken
        latency.arrived(k * 0.04, 100.0 + k * 0.04)
    assert latency.shown(0.0, 100.25) == pytest.approx(0.25)
    assert latency.shown(0.2, 100.47) == pytest.approx(0.27)


def test_a_burst_counts_from_when_its_speech_could_have_played():
    latency = Latency()
    latency.turn(5.0, 50.0)
    latency.arrived(5.0, 50.0)  # three seconds handed over at once
    assert latency.shown(5.0, 50.3) == pytest.approx(0.3)
    assert latency.shown(7.0, 52.3) == pytest.approx(0.3)  # two seconds in: not 2.3 s late
    latency.turn(8.0, 60.0)  # the next turn starts its own count
    latency.arrived(8.0, 60.0)
    assert latency.shown(8.0, 60.2) == pytest.approx(0.2)
    assert latency.summary()["frames"] == 3 and latency.summary()["max_ms"] == pytest.approx(300)


def test_audio_never_handed_over_has_no_latency():
    latency = Latency()
    assert latency.shown(1.0, 10.0) is None and latency.summary() == {}
