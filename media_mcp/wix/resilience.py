"""Retries with backoff and jitter, a per-call time budget, and a client-side rate limiter.

Time is injected (a clock and a sleep), so tests check every wait without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass
class RetryPolicy:
    """How often and how patiently a safe call is repeated."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    budget: float = 60.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Full-jitter exponential backoff, or the server's ``Retry-After`` when it gave one."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        return self.rng.uniform(ceiling / 2, ceiling)


class RateLimiter:
    """A token bucket sized so no 60-second window holds more than ``per_minute`` calls."""

    def __init__(self, per_minute: int, clock: Clock = time.monotonic, sleep: Sleep = anyio.sleep) -> None:
        self.burst = max(1, min(20, per_minute // 10))
        self.rate = max(per_minute - self.burst, 1) / 60.0
        self._tokens = float(self.burst)
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._lock = anyio.Lock()

    async def acquire(self) -> float:
        """Wait for a slot; returns how long it waited."""
        async with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            waited = 0.0
            if self._tokens < 1:
                waited = (1 - self._tokens) / self.rate
                await self._sleep(waited)
                self._tokens = 1.0
                self._stamp = self._clock()
            self._tokens -= 1
            return waited
