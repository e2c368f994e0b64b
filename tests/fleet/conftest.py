"""Fixtures of the fleet tests: a real ``redis-server``, a recording fake of Wix, and replicas of media-mcp."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.fakewix import FakeWix
from tests.fleet.processes import FleetSettings, RedisServer, Replica, redis_or_skip
from tests.fleet.processes import start_fleet as _start_fleet
from tests.fleet.processes import stop_fleet as _stop_fleet

FLEET = FleetSettings(replicas=3, limit=12, window=2.0)
"""Three replicas, 12 Wix calls per 2 s across them: a short window, so nothing waits a minute."""


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """Debian's ``redis-server`` on a free loopback port, no persistence; `RedisServer.stop`/`restart` for outages.

    Skipped when it is not installed (failed under ``CI=true``, where ``.ci/run`` installs it).
    """
    server = RedisServer(tmp_path / "redis", redis_or_skip())
    server.work.mkdir(parents=True, exist_ok=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_wix(tmp_path: Path) -> Iterator[FakeWix]:
    """The embedded library behind a counting proxy that answers 429 past ``FLEET.limit`` per ``FLEET.window``."""
    with FakeWix(tmp_path / "wix", limit=FLEET.limit, window=FLEET.window) as wix:
        yield wix


@pytest.fixture
def replicas(tmp_path: Path, fake_wix: FakeWix, redis_server: RedisServer) -> Iterator[list[Replica]]:
    """``FLEET.replicas`` stateless HTTP replicas sharing ``redis_server``, on ``fake_wix``."""
    fleet = _start_fleet(tmp_path / "fleet", FLEET, fake_wix.wix_environment(), redis_server.url)
    try:
        yield fleet
    finally:
        _stop_fleet(fleet)
