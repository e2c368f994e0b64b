"""What a fleet of replicas shares through Redis (``MEDIA_MCP_REDIS_URL``): the Wix rate limit and spent tokens.

Several stateless HTTP replicas behind a load balancer act on one Wix site. Wix counts requests per app instance
(200 a minute), and a confirmation token must work once across the fleet, so both live in Redis:

- the rate limit is a sliding window of request stamps in one sorted set per site, checked and taken in one Lua
  script run by Redis (atomic: no read-then-write race between replicas), on Redis's own clock (replicas' clocks
  may differ). A slot is held a little longer than the window (`HOLD_MARGIN`), so the network delay between
  taking a slot and Wix receiving the request never lets two requests a window apart count in one window at Wix;
- a spent token is a key set only if absent (``SET NX``), expiring with the token;
- where each item the fleet trashed came from, so a restore under a folder scope works on any replica.

Every Redis call is bounded (``MEDIA_MCP_REDIS_TIMEOUT_SECONDS``). When Redis does not answer in time, the fleet is
taken as down for `RETRY_AFTER` seconds (no call waits on it meanwhile); a refused connection costs nothing, so the
next call tries again at once. Either way the call raises `FleetUnavailable`: the
adapter's rate limit then falls back to this replica's share of the limit (`media_mcp.wix.resilience.FleetLimiter`),
and the guard, which cannot prove a token unspent, refuses to act on one, with a message to try again.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from media_mcp.settings import ServerSettings

if TYPE_CHECKING:
    from redis.asyncio import Redis

RETRY_AFTER = 2.0
"""Seconds the fleet is taken as down after a Redis call timed out, before the next call tries it again."""
ORIGIN_SECONDS = 90 * 24 * 3600
"""How long the fleet remembers where a trashed item came from (longer than a media service keeps its trash)."""
HOLD_MARGIN = 0.05
"""A slot is held for the window plus this share of it, at least `HOLD_MARGIN_MIN` and at most `HOLD_MARGIN_MAX`
seconds: more than the delay between taking a slot and Wix receiving the request, even on a loaded host."""
HOLD_MARGIN_MIN = 0.5
HOLD_MARGIN_MAX = 1.0

_WINDOW = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local limit = tonumber(ARGV[1])
local hold = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - hold)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], hold)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(tonumber(oldest[2]) + hold - now, 1)
"""
"""Take a slot in the window (answers 0), or answer how many milliseconds until the oldest slot frees."""

_CLAIM = """
redis.call('SET', KEYS[2], ARGV[3], 'NX')
if tonumber(ARGV[1]) + 2000 < tonumber(redis.call('GET', KEYS[2])) then
  return -1
end
if redis.call('SET', KEYS[1], '1', 'NX', 'EXAT', ARGV[2]) then
  return 1
end
return 0
"""
"""Spend a token (1), or answer that it was spent (0), or that it was minted before this Redis's epoch (-1).

The epoch is when this Redis first served the fleet a token (minted or claimed), on the clock of the replica that
did (the one tokens are stamped with): a Redis that restarted without its data has a later one, and has forgotten
what was spent before it, so a token minted before it cannot be proven unspent. Two seconds of slack cover the
token's whole-second stamp and the skew between replicas' clocks."""


class FleetUnavailable(Exception):
    """Redis could not be reached (or did not answer in time): what only it can prove cannot be proven now."""


class Fleet:
    """The replicas' shared state in Redis, every call bounded in time."""

    def __init__(
        self, url: str, *, timeout: float, prefix: str = "media-mcp", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._url = url
        self._timeout = timeout
        self._prefix = prefix
        self._clock = clock
        self._redis: Redis | None = None
        self._down_until = 0.0
        self._window: Any = None
        self._claim: Any = None

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> Fleet | None:
        if settings.redis_url is None:
            return None
        return cls(settings.redis_url.get_secret_value(), timeout=settings.redis_timeout_seconds)

    def __repr__(self) -> str:  # never the URL: it may carry a password
        return f"Fleet(prefix={self._prefix!r})"

    def _client(self) -> Redis:
        if self._redis is None:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._redis = Redis.from_url(
                self._url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),  # the fleet's own back-off decides when to try again
                health_check_interval=0,
            )
            self._window = self._redis.register_script(_WINDOW)
            self._claim = self._redis.register_script(_CLAIM)
        return self._redis

    async def _run(self, what: str, call: Callable[[Redis], Awaitable[Any]]) -> Any:
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeout

        if self._clock() < self._down_until:
            raise FleetUnavailable(f"Redis is unreachable ({what}); trying again in a moment")
        try:
            with anyio.fail_after(self._timeout * 2):
                return await call(self._client())
        except (RedisError, OSError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError | RedisTimeout):  # a Redis that hangs: do not wait on it for a while
                self._down_until = self._clock() + RETRY_AFTER
            raise FleetUnavailable(f"Redis is unreachable ({what}: {type(exc).__name__})") from None

    async def take_slot(self, site: str, limit: int, window: float) -> float:
        """Take a slot in the site's window; 0.0, or the seconds to wait before asking again."""
        margin = min(max(window * HOLD_MARGIN, HOLD_MARGIN_MIN), HOLD_MARGIN_MAX)
        hold_ms = int((window + margin) * 1000)
        keys = [f"{self._prefix}:wix-rate:{site}", f"{self._prefix}:epoch"]
        member = f"{os.getpid()}-{uuid.uuid4().hex}"

        async def call(_: Redis) -> Any:
            return await self._window(keys=keys, args=[limit, hold_ms, member])

        wait_ms = int(await self._run("rate limit", call))
        return wait_ms / 1000.0

    async def claim(self, signature: str, minted: float, expires: float, now: float) -> bool:
        """Mark a token spent across the fleet until it expires; False if it already was. Times are epoch seconds on
        the guard's clock.

        Raises `FleetUnavailable` for a token minted before this Redis's epoch: it may have been spent before."""
        keys = [f"{self._prefix}:spent:{signature}", f"{self._prefix}:epoch"]

        async def call(_: Redis) -> Any:
            args = [int(minted * 1000), max(int(expires) + 1, 1), int(now * 1000)]
            return await self._claim(keys=keys, args=args)

        outcome = int(await self._run("spent tokens", call))
        if outcome < 0:
            raise FleetUnavailable("Redis restarted without its data since this token was issued (so it may have "
                                   "been used already)")  # fmt: skip
        return outcome == 1

    async def mark_epoch(self, now: float) -> None:
        """Stamp this Redis's epoch (``now``, epoch seconds) if it has none yet, before a token is minted: `_CLAIM`."""

        async def call(redis: Redis) -> Any:
            return await redis.set(f"{self._prefix}:epoch", int(now * 1000), nx=True)

        await self._run("epoch", call)

    async def release(self, signature: str) -> None:
        """The action a claimed token was for did nothing: it may be used again."""

        async def call(redis: Redis) -> Any:
            return await redis.delete(f"{self._prefix}:spent:{signature}")

        await self._run("spent tokens", call)

    async def remember_origins(self, origins: list[tuple[str, str, str, str | None]], when: float) -> None:
        """Where items just trashed lived (item id, kind, folder id, their fingerprint in the trash), so any replica
        can restore them under a scope."""
        if not origins:
            return

        async def call(redis: Redis) -> Any:
            async with redis.pipeline(transaction=False) as pipe:
                for item, _kind, origin, mark in origins:
                    value = f"{origin} {when}" + (f" {mark}" if mark else "")
                    pipe.set(f"{self._prefix}:origin:{item}", value, ex=ORIGIN_SECONDS)
                return await pipe.execute()

        await self._run("trash origins", call)

    async def origin(self, item_id: str) -> tuple[str, float, str | None] | None:
        """Where an item in the trash came from, when it went, and its fingerprint in the trash (None if unknown),
        if a replica of the fleet trashed it."""

        async def call(redis: Redis) -> Any:
            return await redis.get(f"{self._prefix}:origin:{item_id}")

        raw = await self._run("trash origins", call)
        if not raw:
            return None
        folder, when, *rest = [*raw.decode().split(" "), ""][:3]
        try:
            return folder, float(when), rest[0] or None
        except ValueError:
            return None

    async def forget_origins(self, item_ids: list[str]) -> None:
        if not item_ids:
            return

        async def call(redis: Redis) -> Any:
            return await redis.delete(*(f"{self._prefix}:origin:{i}" for i in item_ids))

        await self._run("trash origins", call)

    async def aclose(self) -> None:
        if self._redis is not None:
            redis, self._redis = self._redis, None
            await redis.aclose()
