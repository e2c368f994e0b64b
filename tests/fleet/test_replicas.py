"""A fleet: three ``media-mcp --transport http --stateless`` processes, one Redis, one (fake) Wix site.

Real processes throughout: Debian's ``redis-server`` on a loopback port, three replicas with their own data
directories and the settings a fleet shares (`tests.fleet.conftest.FLEET`: 12 Wix calls per 2 s, the same confirm
secret, ``MEDIA_MCP_FLEET_SIZE=3``), and a recording fake of Wix (`tests.fleet.fakewix`) that allows exactly that
limit, so any request past it shows there as a 429. MCP clients reach the replicas over streamable HTTP, the way a
load balancer would spread an agent's calls.

One test runs the phases in order on one fleet (starting it takes seconds): the shared rate limit under load; a
confirmation token spent on one replica and replayed on another; a cursor from one replica on the next ones; Redis
stopped and restarted mid-run (a token from before the restart refused, a fresh one working), then hanging. A fast
test checks the fake itself.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.types import CallToolResult

from media_mcp import errors as e
from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from media_mcp.wix.mapping import from_response
from tests.conftest import FakeClock, PNG_16x8
from tests.fleet.conftest import FLEET
from tests.fleet.fakewix import API, CountingProxy, FakeWix, RateWindow, max_in_window
from tests.fleet.processes import RedisServer, Replica, redis_or_skip

pytestmark = pytest.mark.anyio

CALL_TIMEOUT = 30.0
LOAD_CALLS = 30
"""search_files calls at once over the three replicas: about 60 Wix requests, five windows' worth at 12 per 2 s."""
OUTAGE_BOUND = 5.0
"""Longest a call may take while Redis is down or hangs (every Redis call is bounded by 0.5 s)."""


def text_of(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


async def call(replica: Replica, tool: str, arguments: dict[str, Any], mode: str = "auto") -> CallToolResult:
    """One call in a session of its own on ``replica``, as a load balancer may send each call elsewhere."""
    with anyio.fail_after(CALL_TIMEOUT):
        async with Client(replica.mcp_url, mode=mode, read_timeout_seconds=CALL_TIMEOUT) as client:
            return await client.call_tool(tool, arguments)


async def ok(replica: Replica, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await call(replica, tool, arguments)
    assert not result.is_error, f"{tool} on replica {replica.index}: {text_of(result)}"
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


async def in_trash(replica: Replica, file_id: str) -> bool:
    details = await ok(replica, "get_file", {"file_id": file_id})
    flag: bool = details["files"][0]["in_trash"]
    return flag


class Laps:
    """Prints how long each phase took (shown with the output of a failed test)."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def __call__(self, phase: str) -> None:
        now = time.monotonic()
        print(f"{phase}: {now - self.last:.1f}s")
        self.last = now


async def mint_token(replica: Replica, file_id: str) -> str:
    preview = await ok(replica, "move_to_trash", {"file_ids": [file_id]})
    assert preview["status"] == "confirmation_required", preview
    token: str = preview["confirmation_token"]
    return token


@pytest.mark.slow
async def test_a_fleet_shares_the_rate_limit_spent_tokens_and_cursors(
    fake_wix: FakeWix, redis_server: RedisServer, replicas: list[Replica]
) -> None:
    library = fake_wix.library
    folder = library.create_folder("fleet")
    files = [library.upload(f"shot-{i}.png", PNG_16x8, "image/png", folder) for i in range(5)]
    r1, r2, r3 = replicas
    lap = Laps()

    # a. load: no window at Wix holds more than the fleet's limit, and nothing was refused or failed
    fake_wix.reset()
    began = time.monotonic()
    results: list[CallToolResult] = []

    async def one(k: int) -> None:
        mode = "auto" if k % 2 else "legacy"
        results.append(await call(replicas[k % 3], "search_files", {"folder_id": folder, "limit": 3}, mode))

    async with anyio.create_task_group() as tg:
        for k in range(LOAD_CALLS):
            tg.start_soon(one, k)
    took = time.monotonic() - began
    failed = [text_of(r) for r in results if r.is_error]
    rate = fake_wix.record()
    sent, tightest = rate.count, rate.tightest_span()
    figures = (
        f"{sent} Wix requests in {took:.2f}s; {FLEET.limit + 1} of them within {tightest or 0:.3f}s at the closest"
    )
    print(f"load: {figures}")
    assert not failed, failed
    assert sent >= 2 * FLEET.limit, f"the load sent only {sent} Wix requests: the limit was never tested"
    assert rate.rate_limited == 0, f"Wix answered 429 {rate.rate_limited} times: {figures}"
    assert rate.max_in_window() <= FLEET.limit, figures
    assert took >= (sent / FLEET.limit - 1) * FLEET.window * 0.9, f"{sent} requests in {took:.1f}s"
    lap("a. load")

    # b. a token spent on one replica is spent on all: replayed on another (the file restored meanwhile, so the
    # preview it approved is the same again), it is refused
    early = await mint_token(r1, files[1])  # for phase d1, a few seconds from now
    token = await mint_token(r1, files[0])
    done = await ok(r2, "move_to_trash", {"file_ids": [files[0]], "confirmation_token": token})
    assert done["status"] == "done", done
    restored = await ok(r1, "restore_from_trash", {"file_ids": [files[0]]})
    assert [item["status"] for item in restored["items"]] == ["done"], restored
    replayed = await call(r3, "move_to_trash", {"file_ids": [files[0]], "confirmation_token": token})
    assert replayed.is_error and "already used" in text_of(replayed), text_of(replayed)
    assert not await in_trash(r2, files[0])
    lap("b. token")

    # c. a cursor minted by one replica works on the next: the folder paged one file at a time, round the fleet
    seen: list[str] = []
    cursor: str | None = None
    for k in range(len(files) + 1):
        page = await ok(replicas[k % 3], "search_files", {"folder_id": folder, "limit": 1, "cursor": cursor})
        seen.extend(row[0] for row in page["rows"])
        cursor = page.get("next_cursor")
        if cursor is None:
            break
    assert sorted(seen) == sorted(files), seen
    lap("c. cursor")

    # d1. Redis stopped: a destructive call refuses (retryably) and nothing moves; reads go on. Restarted without its
    # data, it has forgotten what was spent: a token minted before (in phase b, seconds ago) is refused; a fresh one
    # works
    redis_server.stop()
    with anyio.fail_after(OUTAGE_BOUND):
        refused = await call(r2, "move_to_trash", {"file_ids": [files[1]], "confirmation_token": early})
    assert refused.is_error and "Redis" in text_of(refused) and "try again" in text_of(refused), text_of(refused)
    assert not await in_trash(r3, files[1])
    found = await ok(r1, "search_files", {"folder_id": folder})
    assert files[1] in [row[0] for row in found["rows"]]
    redis_server.restart()
    replayed = await call(r2, "move_to_trash", {"file_ids": [files[1]], "confirmation_token": early})
    assert replayed.is_error and "Redis restarted without its data" in text_of(replayed), text_of(replayed)
    assert not await in_trash(r3, files[1])
    fresh = await mint_token(r1, files[1])
    done = await ok(r2, "move_to_trash", {"file_ids": [files[1]], "confirmation_token": fresh})
    assert done["status"] == "done" and await in_trash(r3, files[1]), done
    await ok(r1, "restore_from_trash", {"file_ids": [files[1]]})
    lap("d1. Redis stopped and restarted")

    # d2. Redis hangs (SIGSTOP: connections open, no answer): a destructive call refuses in bounded time, reads go on
    token = await mint_token(r1, files[1])
    redis_server.pause()
    try:
        with anyio.fail_after(OUTAGE_BOUND):
            refused = await call(r2, "move_to_trash", {"file_ids": [files[1]], "confirmation_token": token})
        assert refused.is_error, refused.structured_content
        assert "Redis" in text_of(refused) and "try again" in text_of(refused), text_of(refused)
        assert not await in_trash(r3, files[1])
        with anyio.fail_after(OUTAGE_BOUND):
            found = await ok(r3, "search_files", {"folder_id": folder})
        assert files[1] in [row[0] for row in found["rows"]]
    finally:
        redis_server.resume()
    lap("d2. Redis hangs")
    # a Redis restarted without its data has an empty window too: the replicas may then send a burst that Wix answers
    # 429 (docs/fleet.md); the adapter's retries absorb it, so no call above failed, and the fake failed nothing
    rate = fake_wix.record()
    assert rate.failures == 0, f"Wix: {rate.rate_limited} 429s, {rate.failures} failures: {rate.failure_reasons}"


async def test_the_fake_wix_counts_trailing_windows_and_answers_429_past_its_limit(
    library: Library, clock: FakeClock
) -> None:
    assert max_in_window([0.0, 0.5, 1.0, 1.9, 2.0, 5.0], 2.0) == 4  # (0, 2] holds 0.5, 1.0, 1.9, 2.0
    assert max_in_window([], 2.0) == 0
    rate = RateWindow(limit=3, window=10.0, clock=clock)
    proxy = CountingProxy(httpx.ASGITransport(app=create_app(library)), rate)
    headers = {"Authorization": library.api_key}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy), base_url="http://wix.test") as http:
            for _ in range(3):
                assert (await http.get(f"{API}/folders/media-root", headers=headers)).status_code == 200
                clock.advance(1.0)
            refused = await http.get(f"{API}/folders/media-root", headers=headers)
            assert refused.status_code == 429
            error = from_response(refused)
            assert isinstance(error, e.RateLimited) and error.code == "RESOURCE_EXHAUSTED", error
            assert (await http.get("/healthz")).status_code == 200  # not the API: not counted
            clock.advance(7.5)  # the first request has left the window, the refused one has not
            assert (await http.get(f"{API}/folders/media-root", headers=headers)).status_code == 429
            clock.advance(10.0)
            assert (await http.get(f"{API}/folders/media-root", headers=headers)).status_code == 200
    finally:
        await proxy.aclose()
    assert rate.count == 6 and rate.rate_limited == 2
    assert rate.max_in_window() == 4  # at 3.0 s: the three admitted and the refused one
    assert rate.routes == {"GET /folders/{id}": 6}


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_redis_server_skips_with_the_install_command_unless_ci_requires_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no redis-server on it
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match=re.escape("apt-get install redis-server")):
        redis_or_skip()
