"""Token buckets: at most ``rate`` actions a period (a minute, unless said) on average, up to
``rate`` at once.

A bucket holds up to ``capacity`` tokens and gains ``capacity`` of them a period; an action takes
one, and with none left it is refused, told how many seconds until the next token. ``RateLimiter``
keeps one bucket per key (an API key's name, a client address) in bounded memory: a bucket that has
filled up again is the same as a new one and is dropped first. Both are driven by a monotonic clock
that tests replace. Not thread-safe: the server uses them on its event loop only.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

MINUTE_S = 60.0
EPSILON = 1e-9  # a token refilled but for rounding is a token
MAX_KEYS = 10_000  # buckets kept per limiter; beyond, the least recently used goes


class TokenBucket:
    """``capacity`` tokens, refilled at ``capacity`` per ``period_s``."""

    def __init__(self, capacity: int, now: float, period_s: float = MINUTE_S) -> None:
        if capacity < 1:
            raise ValueError(f"a bucket holds at least one token, not {capacity}")
        self.capacity = capacity
        self.rate = capacity / period_s  # tokens per second
        self.tokens = float(capacity)
        self.updated = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait(self, now: float) -> float:
        """The seconds until there is a token (0: there is one now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 - EPSILON else (1 - self.tokens) / self.rate

    def take(self, now: float) -> float:
        """Take a token: 0 if there was one, else the seconds until there is (nothing taken)."""
        wait = self.wait(now)
        if not wait:
            self.tokens -= 1
        return wait

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity


class RateLimiter:
    """One ``TokenBucket`` of ``rate`` per ``period_s`` for each key; ``rate`` 0: no limit."""

    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS,
                 period_s: float = MINUTE_S) -> None:  # fmt: skip
        if rate < 0:
            raise ValueError(f"a rate must not be negative, not {rate}")
        self.rate, self.period_s = rate, period_s
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def wait(self, key: str) -> float:
        """The seconds ``key`` must wait before its next action (0: it may act now); counts nothing."""
        bucket = self._buckets.get(key) if self.rate else None
        return 0.0 if bucket is None else bucket.wait(self._clock())

    def take(self, key: str) -> float:
        """Count one action of ``key``: 0 if allowed, else the seconds to wait (nothing counted)."""
        if not self.rate:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, now, self.period_s)
            self._trim(now)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)

    def _trim(self, now: float) -> None:
        """Keep at most ``max_keys`` buckets: past that, the full ones go (forgetting them changes
        nothing), then the least recently used down to 90 % (so the sweep is rare however many
        keys come)."""
        if len(self._buckets) <= self._max_keys:
            return
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]
        while len(self._buckets) > self._max_keys * 9 // 10:
            self._buckets.popitem(last=False)


def retry_after(seconds: float) -> int:
    """Whole seconds for a ``Retry-After`` header: never 0 for a wait, so a client does not retry at once."""
    return max(1, math.ceil(seconds))
