"""Token buckets on a clock the tests move by hand."""

from __future__ import annotations

import pytest

from server.ratelimit import RateLimiter, TokenBucket, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_burst_of_its_capacity_then_one_per_share_of_a_minute():
    bucket = TokenBucket(6, now=0.0)  # 6 a minute: one every 10 s
    assert [bucket.take(0.0) for _ in range(6)] == [0.0] * 6
    assert bucket.take(0.0) == pytest.approx(10.0)  # refused: the next token in 10 s
    assert bucket.take(4.0) == pytest.approx(6.0)  # a refusal takes nothing
    assert bucket.take(10.0) == 0.0
    assert bucket.take(10.0) == pytest.approx(10.0)
    assert not bucket.full(10.0) and bucket.full(70.0)
    assert [bucket.take(1000.0) for _ in range(7)][-1] > 0  # it never holds more than its capacity
    with pytest.raises(ValueError):
        TokenBucket(0, now=0.0)


def test_a_limiter_keeps_one_bucket_per_key_and_counts_only_what_it_allows():
    clock = Clock()
    limiter = RateLimiter(2, clock)  # 2 a minute: one every 30 s
    assert limiter.take("a") == 0 and limiter.take("a") == 0
    assert limiter.wait("a") == pytest.approx(30.0) and limiter.take("a") == pytest.approx(30.0)
    assert limiter.wait("b") == 0 and limiter.take("b") == 0  # another key has its own
    clock.now += 30
    assert limiter.wait("a") == 0  # waiting counts nothing
    assert limiter.take("a") == 0 and limiter.take("a") == pytest.approx(30.0)


def test_a_limiter_over_another_period():
    clock = Clock()
    limiter = RateLimiter(5, clock, period_s=1.0)  # 5 a second, bursts of 5
    assert [limiter.take("a") for _ in range(6)][-1] == pytest.approx(0.2)
    clock.now += 0.2
    assert limiter.take("a") == 0


def test_no_limit_at_zero():
    limiter = RateLimiter(0, Clock())
    assert all(limiter.take("a") == 0 for _ in range(1000)) and len(limiter) == 0
    with pytest.raises(ValueError):
        RateLimiter(-1)


def test_memory_is_bounded_however_many_keys_come_and_full_buckets_go_first():
    clock = Clock()
    limiter = RateLimiter(2, clock, max_keys=100)
    for i in range(1000):  # newcomers, none of them full yet: the least recently used go
        limiter.take(f"new {i}")
        assert len(limiter) <= 100
    clock.now += 60  # every bucket is full again
    limiter.take("busy")
    limiter.take("busy")  # has used its share
    for i in range(100):
        limiter.take(f"later {i}")
    assert limiter.wait("busy") > 0  # the full buckets went, not the one that holds a limit
    assert len(limiter) <= 100


def test_retry_after_is_whole_seconds_and_never_zero():
    assert [retry_after(s) for s in (0.0, 0.2, 1.0, 1.01, 59.5)] == [1, 1, 1, 2, 60]
