"""server.looplag: a loop held up shows in the histogram as a wake that late."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, Histogram

from server import looplag


def test_a_loop_held_up_is_recorded_as_a_late_wake():
    histogram = Histogram("lag_seconds", "lag", buckets=(0.01, 0.1, 1), registry=CollectorRegistry())

    async def run() -> None:
        watcher = asyncio.create_task(looplag.watch(histogram, period_s=0.01))
        await asyncio.sleep(0.05)
        time.sleep(0.15)  # a callback that holds the loop
        await asyncio.sleep(0.05)
        watcher.cancel()

    asyncio.run(run())
    buckets = {s.labels["le"]: s.value for s in histogram.collect()[0].samples if s.name.endswith("_bucket")}
    assert buckets["+Inf"] >= 5  # it woke every 10 ms meanwhile
    assert buckets["+Inf"] - buckets["0.1"] == 1  # one wake more than 100 ms late: the hold, once
    assert buckets["1.0"] == buckets["+Inf"]
