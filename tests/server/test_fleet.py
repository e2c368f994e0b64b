"""Replicas sharing state through a real Redis, in one process: servers with their own data directories and the same
secret, over one library, through the SDK client in both protocol eras; and the fleet's rate limit itself.

The same promises across real replica processes behind a counting fake of Wix are in ``tests/fleet``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from pydantic import SecretStr

from media_mcp.errors import RateLimited
from media_mcp.fleet import Fleet, FleetUnavailable
from media_mcp.guard import StaticBackend
from media_mcp.server.app import create_server
from media_mcp.settings import ServerSettings
from media_mcp.wix.client import WixMediaClient
from media_mcp.wix.resilience import FleetLimiter
from tests.conftest import FakeClock
from tests.fleet.conftest import redis_server
from tests.fleet.processes import RedisServer
from tests.server.test_guardrails import bounded, data, put, refusal, trashed, wix

__all__ = ["redis_server", "wix"]

pytestmark = pytest.mark.anyio

SECRET = "s" * 32


class Ticker:
    """A monotonic clock the test moves: the fleet's back-off after a failed Redis call passes without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Replica = Callable[..., Any]


@pytest.fixture
async def replica(
    wix: WixMediaClient, tmp_path: Path, redis_server: RedisServer, clock: FakeClock
) -> AsyncIterator[Replica]:
    """``replica(n, **settings)``: a server with its own data directory, the fleet's secret and its Redis."""
    fleets: list[Fleet] = []

    def build(n: int, fleet: Fleet | None = None, **overrides: Any) -> Any:
        data_dir = tmp_path / f"replica-{n}"
        data_dir.mkdir(exist_ok=True)
        overrides = {"confirm_secret": SECRET, "redis_url": redis_server.url, "confirm": "token"} | overrides
        settings = ServerSettings(**overrides)
        if fleet is None:
            fleet = Fleet.from_settings(settings)
            assert fleet is not None
            fleets.append(fleet)
        return create_server(settings, StaticBackend(wix, "local"), data_dir=data_dir, clock=clock, fleet=fleet)

    yield build
    for fleet in fleets:
        await fleet.aclose()


@bounded
async def test_a_token_spent_on_one_replica_is_refused_on_another(
    replica: Replica, mode: str, wix: WixMediaClient, tmp_path: Path
) -> None:
    files = [await put(wix, tmp_path, f"f{n}.png") for n in range(2)]
    async with (
        Client(replica(1), mode=mode) as one,
        Client(replica(2), mode=mode) as two,
        Client(replica(3), mode=mode) as three,
    ):
        token = data(await one.call_tool("move_to_trash", {"file_ids": files}))["confirmation_token"]
        done = data(await two.call_tool("move_to_trash", {"file_ids": files, "confirmation_token": token}))
        assert done["status"] == "done" and all([await trashed(wix, f) for f in files])
        await wix.bulk_restore_files(files)
        again = await three.call_tool("move_to_trash", {"file_ids": files, "confirmation_token": token})
        assert "already used" in refusal(again)
        assert not any([await trashed(wix, f) for f in files])


@bounded
async def test_a_cursor_from_one_replica_opens_on_another(
    replica: Replica, mode: str, wix: WixMediaClient, tmp_path: Path
) -> None:
    for n in range(3):
        await put(wix, tmp_path, f"page-{n}.png")
    async with Client(replica(1), mode=mode) as one, Client(replica(2), mode=mode) as two:
        first = data(await one.call_tool("search_files", {"limit": 1}))
        second = data(await two.call_tool("search_files", {"limit": 1, "cursor": first["next_cursor"]}))
        assert second["rows"] and second["rows"][0][0] != first["rows"][0][0]


@bounded
async def test_under_a_scope_any_replica_restores_what_another_trashed(
    replica: Replica, mode: str, wix: WixMediaClient, tmp_path: Path
) -> None:
    inside = (await wix.create_folder("inside")).id
    file_id = await put(wix, tmp_path, "kept.png", folder=inside)
    scope = {"allowed_folders": inside}
    async with Client(replica(1, **scope), mode=mode) as one, Client(replica(2, **scope), mode=mode) as two:
        token = data(await one.call_tool("move_to_trash", {"file_ids": [file_id]}))["confirmation_token"]
        data(await one.call_tool("move_to_trash", {"file_ids": [file_id], "confirmation_token": token}))
        restored = data(await two.call_tool("restore_from_trash", {"file_ids": [file_id]}))
        assert [i["status"] for i in restored["items"]] == ["done"]
        assert not await trashed(wix, file_id)


@bounded
async def test_with_redis_down_a_token_is_refused_retryably_and_reads_go_on(
    replica: Replica, mode: str, wix: WixMediaClient, tmp_path: Path, redis_server: RedisServer
) -> None:
    file_id = await put(wix, tmp_path, "precious.png")
    ticker = Ticker()
    fleet = Fleet(redis_server.url, timeout=0.5, clock=ticker)
    try:
        async with Client(replica(1, fleet=fleet), mode=mode) as one:
            token = data(await one.call_tool("move_to_trash", {"file_ids": [file_id]}))["confirmation_token"]
            redis_server.stop()
            text = refusal(await one.call_tool("move_to_trash", {"file_ids": [file_id], "confirmation_token": token}))
            assert "nothing was done" in text and "Redis" in text and "try again" in text
            assert not await trashed(wix, file_id)
            assert data(await one.call_tool("search_files", {}))["rows"]  # reads go on
            redis_server.restart()
            ticker.now += 10  # the fleet's back-off after the failure has passed
            done = data(await one.call_tool("move_to_trash", {"file_ids": [file_id], "confirmation_token": token}))
            assert done["status"] == "done" and await trashed(wix, file_id)
    finally:
        await fleet.aclose()


@bounded
async def test_a_redis_that_restarted_empty_proves_no_older_token_unspent(
    replica: Replica, mode: str, wix: WixMediaClient, tmp_path: Path, redis_server: RedisServer, clock: FakeClock
) -> None:
    file_id = await put(wix, tmp_path, "once.png")
    async with Client(replica(1), mode=mode) as one, Client(replica(2), mode=mode) as two:
        token = data(await one.call_tool("move_to_trash", {"file_ids": [file_id]}))["confirmation_token"]
        data(await one.call_tool("move_to_trash", {"file_ids": [file_id], "confirmation_token": token}))
        await wix.bulk_restore_files([file_id])
        redis_server.restart()  # without persistence: every spent token is forgotten
        clock.advance(10)
        replay = refusal(await two.call_tool("move_to_trash", {"file_ids": [file_id], "confirmation_token": token}))
        assert "Redis restarted without its data" in replay and "ask the user again" in replay
        assert not await trashed(wix, file_id)
        fresh = data(await two.call_tool("move_to_trash", {"file_ids": [file_id]}))["confirmation_token"]
        done = data(await one.call_tool("move_to_trash", {"file_ids": [file_id], "confirmation_token": fresh}))
        assert done["status"] == "done"


# --- the fleet's rate limit ------------------------------------------------------------------------------


@bounded
async def test_three_limiters_on_one_site_hold_the_limit_together(redis_server: RedisServer) -> None:
    limit, window = 6, 0.5
    fleets = [Fleet(redis_server.url, timeout=0.5) for _ in range(3)]
    limiters = [FleetLimiter(f, "site-1", limit=limit, window=window, fleet_size=3) for f in fleets]
    stamps: list[float] = []

    async def caller(limiter: FleetLimiter) -> None:
        for _ in range(6):
            await limiter.acquire()
            stamps.append(time.monotonic())

    try:
        async with anyio.create_task_group() as tasks:
            for limiter in limiters:
                tasks.start_soon(caller, limiter)
    finally:
        for fleet in fleets:
            await fleet.aclose()
    stamps.sort()
    assert len(stamps) == 18
    busiest = max(sum(1 for t in stamps if start <= t < start + window) for start in stamps)
    assert busiest == limit  # full windows, never more
    other = Fleet(redis_server.url, timeout=0.5)
    try:
        assert await other.take_slot("site-2", limit, window) == 0.0  # another site has a window of its own
    finally:
        await other.aclose()


async def test_without_redis_a_limiter_falls_back_to_its_share_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waits: list[float] = []
    ticker = Ticker()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        ticker.now += seconds

    fleet = Fleet("redis://127.0.0.1:1/0", timeout=0.2)  # nothing listens on port 1
    limiter = FleetLimiter(fleet, "site", limit=60, window=60.0, fleet_size=3, sleep=sleep, clock=ticker)
    with caplog.at_level(logging.WARNING, logger="media_mcp.wix"):
        for _ in range(25):
            await limiter.acquire()
    await fleet.aclose()
    # a share of 20 a minute: a burst of 2, then one call every 60 / 18 seconds
    assert len(waits) == 23 and all(w == pytest.approx(60 / 18) for w in waits[1:])
    warnings = [r.getMessage() for r in caplog.records if "share" in r.getMessage()]
    assert len(warnings) == 1 and "20 per 60 s" in warnings[0]
    with pytest.raises(FleetUnavailable, match="Redis is unreachable"):
        await fleet.claim("token", time.time(), time.time() + 60, time.time())


def test_the_fleet_never_shows_its_url() -> None:
    settings = ServerSettings(redis_url=SecretStr("redis://:hunter2@127.0.0.1:1/0"))
    fleet = Fleet.from_settings(settings)
    assert fleet is not None and "hunter2" not in repr(fleet) and "hunter2" not in repr(settings)


@bounded
async def test_a_full_window_answers_rate_limited_rather_than_wait_past_the_budget(redis_server: RedisServer) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    fleet = Fleet(redis_server.url, timeout=0.5)
    limiter = FleetLimiter(fleet, "busy-site", limit=1, window=60.0, fleet_size=3, budget=5.0, sleep=sleep)
    try:
        assert await limiter.acquire() == 0.0
        with pytest.raises(RateLimited, match="no slot freed within 5 s") as refused:
            await limiter.acquire()
    finally:
        await fleet.aclose()
    assert waits == [] and refused.value.retryable and (refused.value.retry_after or 0) > 59


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "127.0.0.1:6379", "redis//x"])
def test_a_redis_url_of_another_scheme_is_refused_at_start(url: str) -> None:
    with pytest.raises(ValueError, match="redis://, rediss:// or unix://") as refused:
        ServerSettings(redis_url=SecretStr(url))
    assert url not in str(refused.value)  # the setting may carry a password: never echoed


def test_the_cli_refuses_a_bad_redis_url_without_echoing_it(tmp_path: Path) -> None:
    command = Path(sys.executable).with_name("media-mcp")
    env = {**os.environ, "MEDIA_MCP_REDIS_URL": "http://user:hunter2@127.0.0.1:1", "MEDIA_MCP_DATA_DIR": str(tmp_path)}
    done = subprocess.run([str(command)], input=b"", capture_output=True, env=env, timeout=60, check=False)
    assert done.returncode == 2
    assert b"MEDIA_MCP_REDIS_URL must be a redis://" in done.stderr and b"hunter2" not in done.stderr
    assert done.stdout == b""
