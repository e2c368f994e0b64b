"""Retries with backoff and jitter, a per-call time budget, and client-side rate limiters (this process's, or the
fleet's through Redis).

Time is injected (a clock and a sleep), so tests check every wait without waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from media_mcp.errors import RateLimited
from media_mcp.fleet import Fleet, FleetUnavailable

log = logging.getLogger("media_mcp.wix")

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


class Limiter(Protocol):
    async def acquire(self) -> float:
        """Wait for a slot; returns how long it waited."""
        ...


class RateLimiter:
    """A token bucket sized so no ``window``-second window holds more than ``per_minute`` calls."""

    def __init__(
        self, per_minute: int, clock: Clock = time.monotonic, sleep: Sleep = anyio.sleep, *, window: float = 60.0
    ) -> None:
        self.burst = max(1, min(20, per_minute // 10))
        self.rate = max(per_minute - self.burst, 1) / window
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


class FleetLimiter:
    """The Wix rate limit over the whole fleet, or this replica's share of it while Redis is unreachable."""

    def __init__(
        self,
        fleet: Fleet,
        site: str,
        *,
        limit: int,
        window: float,
        fleet_size: int,
        budget: float = 60.0,
        sleep: Sleep = anyio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self._fleet = fleet
        self._budget = budget
        self._site = site
        self._limit = limit
        self._window = window
        self._sleep = sleep
        self._share = max(1, limit // max(1, fleet_size))
        self._local = RateLimiter(self._share, clock, sleep, window=window)
        self._outage = False

    async def acquire(self) -> float:
        """Wait for a slot; returns how long it waited. Raises `RateLimited` (retryable) rather than wait past the
        call's budget: an agent hears that the fleet is busy, never a 429 from Wix."""
        waited = 0.0
        while True:
            try:
                wait = await self._fleet.take_slot(self._site, self._limit, self._window)
            except FleetUnavailable as exc:
                if not self._outage:
                    self._outage = True
                    log.warning(
                        "%s: limiting Wix calls in this process to %d per %g s (its share of the fleet's limit)",
                        exc, self._share, self._window,
                    )  # fmt: skip
                return waited + await self._local.acquire()
            if self._outage:
                self._outage = False
                log.warning("Redis is reachable again: the Wix rate limit is the fleet's again")
            if wait <= 0:
                return waited
            if waited + wait > self._budget:
                raise RateLimited(
                    f"the fleet is at Wix's rate limit ({self._limit} requests per {self._window:g} s, shared by "
                    f"every replica) and no slot freed within {self._budget:g} s; try again shortly",
                    retry_after=wait,
                )
            await self._sleep(wait)
            waited += wait
