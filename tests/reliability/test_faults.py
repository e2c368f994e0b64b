"""The MCP server over the library with a seeded 20% of backend requests faulted (in-process: no sockets, no
waiting): reads succeed or fail with a clear, retryable error; no write happens twice; nothing is lost.

Then one call per fault kind, scripted: a 429 is waited out for its Retry-After, a 503 is retried, a stalled
read is retried (and a read that keeps stalling ends within its time budget), a create whose connection drops
(before or after the library saw it) or that meets a 500 is not repeated and is reported as a temporary failure
whose outcome must be checked before calling again, idempotent writes are retried, a resumable upload rides out
faults on its chunks, and the loopback proxy the report uses injects every kind over real sockets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.types import CallToolResult

from bench.faults import Fault, FaultInjector, FaultPlan, FaultProxy
from bench.rel_faults import FaultMix, Rig, classify, in_process, sha256, text_of
from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from tests.conftest import FakeClock, LoopbackServer, PNG_16x8

pytestmark = pytest.mark.anyio

SEED = 20260801
CALLS = 2000
MIX_BUDGET = 90.0
"""Seconds the whole mix may take (a hang fails the test instead of stalling CI)."""
WAIT = 15.0
Json = dict[str, Any]


@pytest.fixture
async def rig(library: Library, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Rig]:
    async with in_process(library, tmp_path / "rig", FaultPlan(rate=0.2, seed=SEED), clock=clock) as built:
        yield built


@pytest.fixture
async def quiet_rig(library: Library, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Rig]:
    """No random faults: each focused test scripts its own."""
    async with in_process(library, tmp_path / "rig", FaultPlan(rate=0.0, seed=SEED), clock=clock) as built:
        yield built


@pytest.mark.slow
async def test_two_thousand_mixed_calls_with_a_fifth_of_requests_faulted(rig: Rig) -> None:
    mix = FaultMix(rig, SEED)
    with anyio.fail_after(MIX_BUDGET):
        await mix.seed()
        await mix.run(CALLS)
    report = mix.report()
    ledger = mix.ledger

    assert report["unexplained"] == 0, report["unexplained_examples"] + report["problems"]
    assert report["duplicates"] == 0, report["problems"]
    assert report["lost"] == 0, report["problems"]
    assert report["partial_leftovers"] == 0, report["problems"]
    assert report["calls"] >= CALLS
    assert report["reads"] + ledger.writes_ok + ledger.writes_failed_cleanly == report["calls"]
    # the faults really happened, of every kind, to about a fifth of the run's requests
    assert all(n > 0 for n in report["faults_injected"].values()), report["faults_injected"]
    assert 0.15 < report["faults_total"] / report["backend_requests"] < 0.25, report
    assert report["reached_library"] < report["backend_requests"]
    # retries absorb most faults: reads end ok far more often than one request in five survives alone
    assert report["reads_ok"] / report["reads"] > 0.98, report
    assert report["reads_failed_cleanly"] + report["writes_failed_cleanly"] > 0  # some faults reached the caller
    # creates whose outcome was unknown really went both ways: the check covered the hard case
    assert ledger.writes_outcome_unknown > 0
    assert 0 < report["outcome_unknown_done"] < ledger.writes_outcome_unknown, report
    # backoffs were asked for (and never waited for: the adapter's clock is virtual)
    assert rig.sleeps and 1.0 in rig.sleeps


# --- one fault kind at a time -------------------------------------------------------------------


def ok(result: CallToolResult) -> Json:
    assert not result.is_error, text_of(result)
    content: Json | None = result.structured_content
    assert content is not None
    return content


async def call(rig: Rig, tool: str, args: Json, session: str = "allow") -> CallToolResult:
    with anyio.fail_after(WAIT):
        return await rig.sessions[session].call_tool(tool, args)


async def upload(rig: Rig, name: str, data: bytes = PNG_16x8) -> str:
    (rig.upload_root / name).write_bytes(data)
    file_id: str = ok(await call(rig, "upload_file", {"path": name}))["files"][0]["id"]
    return file_id


def rows(library: Library, table: str, name: str) -> int:
    with library.db.read() as conn:
        found: int = conn.execute(f"SELECT count(*) FROM {table} WHERE display_name = ?", (name,)).fetchone()[0]
    return found


def sent(rig: Rig, method: str, path_end: str) -> list[tuple[Fault | None, bool]]:
    """(fault, reached the library) for each request to a path ending ``path_end``."""
    return [(r.fault, r.reached) for r in rig.injector.log if r.method == method and r.path.endswith(path_end)]


@pytest.mark.parametrize("session", ["allow", "token"])
async def test_a_429_is_waited_out_for_its_retry_after(quiet_rig: Rig, session: str) -> None:
    file_id = await upload(quiet_rig, "a.png")
    quiet_rig.injector.script(Fault.RATE_LIMITED)
    details = ok(await call(quiet_rig, "get_file", {"file_id": file_id}, session))
    assert details["files"][0]["id"] == file_id
    assert quiet_rig.sleeps == [1.0]  # Retry-After: 1, exactly
    assert sent(quiet_rig, "GET", "/get-file-by-id") == [(Fault.RATE_LIMITED, False), (None, True)]


async def test_a_503_is_retried_with_backoff(quiet_rig: Rig) -> None:
    await upload(quiet_rig, "b.png")
    quiet_rig.injector.script(Fault.UNAVAILABLE, Fault.UNAVAILABLE)
    page = ok(await call(quiet_rig, "search_files", {"query": "b.png"}))
    assert len(page["rows"]) == 1
    assert len(quiet_rig.sleeps) == 2 and all(0 < s <= 1.0 for s in quiet_rig.sleeps)
    assert [f for f, _ in sent(quiet_rig, "POST", "/files/search")] == [Fault.UNAVAILABLE, Fault.UNAVAILABLE, None]


async def test_a_stalled_read_is_retried(quiet_rig: Rig) -> None:
    file_id = await upload(quiet_rig, "c.png")
    quiet_rig.injector.script(Fault.TIMEOUT)
    ok(await call(quiet_rig, "generate_download_url", {"file_id": file_id}))
    assert sent(quiet_rig, "GET", "/get-file-by-id") == [(Fault.TIMEOUT, True), (None, True)]


async def test_reads_that_keep_failing_end_in_a_clear_retryable_error(quiet_rig: Rig) -> None:
    quiet_rig.injector.script(Fault.TIMEOUT, Fault.DROP_BEFORE, Fault.SERVER_ERROR, Fault.DROP_AFTER)
    result = await call(quiet_rig, "search_folders", {})
    assert classify(result) == "retryable", text_of(result)
    assert "unavailable right now" in text_of(result) and "Call again" in text_of(result)
    assert len(sent(quiet_rig, "POST", "/folders/search")) == 4  # the adapter's attempts, then it stops


@pytest.mark.parametrize(
    ("fault", "reached"), [(Fault.DROP_BEFORE, False), (Fault.DROP_AFTER, True), (Fault.TIMEOUT, True)]
)
async def test_a_create_that_lost_its_answer_is_not_repeated_and_says_to_check(
    quiet_rig: Rig, library: Library, fault: Fault, reached: bool
) -> None:
    quiet_rig.injector.script(fault)
    result = await call(quiet_rig, "create_folder", {"name": "once"})
    assert classify(result) == "ambiguous", text_of(result)
    assert "temporary" in text_of(result) and "search_folders" in text_of(result)
    assert sent(quiet_rig, "POST", "/folders") == [(fault, reached)]  # one attempt only
    assert rows(library, "folders", "once") == (1 if reached else 0)


async def test_a_create_refused_by_the_rate_limit_is_sent_again_once(quiet_rig: Rig, library: Library) -> None:
    quiet_rig.injector.script(Fault.RATE_LIMITED)
    ok(await call(quiet_rig, "create_folder", {"name": "later"}))
    assert sent(quiet_rig, "POST", "/folders") == [(Fault.RATE_LIMITED, False), (None, True)]
    assert rows(library, "folders", "later") == 1


async def test_a_create_refused_with_503_says_call_again(quiet_rig: Rig, library: Library) -> None:
    fault = Fault.UNAVAILABLE  # not repeated by itself: a 503 does not always prove the create did not run
    quiet_rig.injector.script(fault)
    result = await call(quiet_rig, "create_folder", {"name": "refused"})
    assert classify(result) == "retryable", text_of(result)
    assert sent(quiet_rig, "POST", "/folders") == [(fault, False)]
    assert rows(library, "folders", "refused") == 0
    ok(await call(quiet_rig, "create_folder", {"name": "refused"}))  # calling again, as told, makes one
    assert rows(library, "folders", "refused") == 1


async def test_a_500_on_a_create_is_not_repeated_and_says_to_check(quiet_rig: Rig, library: Library) -> None:
    quiet_rig.injector.script(Fault.SERVER_ERROR)
    result = await call(quiet_rig, "create_folder", {"name": "maybe"})
    assert classify(result) == "ambiguous", text_of(result)
    assert len(sent(quiet_rig, "POST", "/folders")) == 1


@pytest.mark.parametrize("session", ["allow", "token"])
async def test_an_upload_whose_answer_is_lost_is_stored_once_and_intact(
    quiet_rig: Rig, library: Library, session: str
) -> None:
    data = bytes(range(256)) * 40
    (quiet_rig.upload_root / "lost.txt").write_bytes(data)
    quiet_rig.injector.script(None, Fault.DROP_AFTER)  # the link is minted, the PUT's answer is lost
    result = await call(quiet_rig, "upload_file", {"path": "lost.txt"}, session)
    assert classify(result) == "ambiguous", text_of(result)
    puts = [(r.fault, r.reached) for r in quiet_rig.injector.log if r.method == "PUT"]
    assert puts == [(Fault.DROP_AFTER, True)]
    assert rows(library, "files", "lost.txt") == 1
    page = ok(await call(quiet_rig, "search_files", {"query": "lost"}))  # checking, as told, finds it
    (file_id,) = [row[0] for row in page["rows"]]
    stored = library.catalog.get_file(file_id)
    assert stored is not None and stored.blob is not None
    assert sha256(library.blobs.path_of(stored.blob).read_bytes()) == sha256(data)
    assert not any(library.data.incoming.iterdir())


async def test_an_upload_dropped_before_the_library_leaves_nothing(quiet_rig: Rig, library: Library) -> None:
    (quiet_rig.upload_root / "gone.txt").write_bytes(b"x" * 5000)
    quiet_rig.injector.script(None, Fault.DROP_BEFORE)
    result = await call(quiet_rig, "upload_file", {"path": "gone.txt"})
    assert classify(result) == "ambiguous", text_of(result)
    assert rows(library, "files", "gone.txt") == 0
    assert not any(library.data.incoming.iterdir())
    assert not any(p.is_file() for p in library.data.blobs.glob("*/*"))


async def test_idempotent_writes_are_retried_through_faults(quiet_rig: Rig, library: Library) -> None:
    file_id = await upload(quiet_rig, "d.png")
    quiet_rig.injector.script(None, Fault.DROP_AFTER)  # get_file passes; the first PATCH's answer is lost
    ok(await call(quiet_rig, "update_file", {"file_id": file_id, "name": "e.png"}))
    assert [f for f, _ in sent(quiet_rig, "PATCH", "/update-file-descriptor")] == [Fault.DROP_AFTER, None]
    quiet_rig.injector.script(None, Fault.TIMEOUT)  # get_files passes; the bulk delete's answer is lost
    ok(await call(quiet_rig, "move_to_trash", {"file_ids": [file_id]}))
    assert [f for f, _ in sent(quiet_rig, "POST", "/bulk/files/delete")] == [Fault.TIMEOUT, None]
    stored = library.catalog.get_file(file_id)
    assert stored is not None and stored.state == "DELETED" and stored.display_name == "e.png"


async def test_a_read_that_keeps_stalling_ends_within_its_time_budget(quiet_rig: Rig) -> None:
    """Each stall costs its read timeout (30 s) on the adapter's clock; the call's 60 s budget bounds the sum."""
    file_id = await upload(quiet_rig, "slow.png")
    quiet_rig.injector.script(*[Fault.TIMEOUT] * 4)
    before = quiet_rig.clock()
    result = await call(quiet_rig, "get_file", {"file_id": file_id})
    spent = quiet_rig.clock() - before
    assert classify(result) == "retryable", text_of(result)
    assert "timed out" in text_of(result)
    assert 59 < spent <= quiet_rig.wix.retry.budget, spent  # two attempts, the second cut to what was left


def tus_only(method: str, path: str) -> bool:
    return method in ("PATCH", "HEAD") and path.startswith("/upload/tus/files/")


async def test_a_resumable_upload_survives_faults_on_its_chunks(
    library: Library, tmp_path: Path, clock: FakeClock
) -> None:
    """Through the tool (above 10 MB: tus): a PATCH whose answer is lost, then a HEAD refused with 429."""
    from media_mcp.guard.uploads import RESUMABLE_ABOVE

    plan = FaultPlan(rate=0.0, seed=SEED, eligible=tus_only)
    async with in_process(library, tmp_path / "rig", plan, clock=clock) as rig:
        data = bytes(range(256)) * (RESUMABLE_ABOVE // 256 + 4096)
        (rig.upload_root / "big.txt").write_bytes(data)
        rig.injector.script(Fault.DROP_AFTER, Fault.RATE_LIMITED)
        with anyio.fail_after(60):
            uploaded = ok(await rig.sessions["allow"].call_tool("upload_file", {"path": "big.txt"}))
        chunks = [(r.method, r.fault) for r in rig.injector.log if tus_only(r.method, r.path)]
        assert chunks[:2] == [("PATCH", Fault.DROP_AFTER), ("HEAD", Fault.RATE_LIMITED)]
        assert 1.0 in rig.sleeps  # the HEAD's Retry-After
        stored = library.catalog.get_file(uploaded["files"][0]["id"])
        assert stored is not None and stored.blob is not None
        assert sha256(library.blobs.path_of(stored.blob).read_bytes()) == sha256(data)
        assert rows(library, "files", "big.txt") == 1


async def test_a_resumable_upload_completes_with_a_fifth_of_its_chunks_faulted(
    library: Library, tmp_path: Path, clock: FakeClock
) -> None:
    from media_mcp.wix import messages as msg

    plan = FaultPlan(rate=0.2, seed=SEED, eligible=tus_only)
    async with in_process(library, tmp_path / "rig", plan, clock=clock) as rig:
        data = bytes(range(251)) * 4000
        source = tmp_path / "chunks.bin"
        source.write_bytes(data)
        minted = await rig.wix.generate_resumable_upload_url(
            msg.GenerateFileResumableUploadUrlRequest(mime_type="application/octet-stream", file_name="chunks.bin")
        )
        with anyio.fail_after(60):
            file = await rig.wix.upload_resumable(
                minted, source, mime_type="application/octet-stream", file_name="chunks.bin", chunk_size=32 * 1024
            )
        assert sum(rig.injector.injected.values()) >= 3, rig.injector.counts()
        stored = library.catalog.get_file(file.id)
        assert stored is not None and stored.blob is not None
        assert sha256(library.blobs.path_of(stored.blob).read_bytes()) == sha256(data)
        assert rows(library, "files", "chunks.bin") == 1


async def test_the_loopback_proxy_injects_every_kind(library: Library) -> None:
    """The report's path: real sockets on 127.0.0.1, real drops, a real stall past a short read timeout."""
    injector = FaultInjector(FaultPlan(rate=0.0))
    kinds = [Fault.RATE_LIMITED, Fault.SERVER_ERROR, Fault.UNAVAILABLE, Fault.DROP_BEFORE, Fault.DROP_AFTER,
             Fault.TIMEOUT, None]  # fmt: skip
    injector.script(*kinds)
    seen: list[str] = []
    with (
        LoopbackServer(create_app(library)) as served,
        FaultProxy(served.url, injector, stall_seconds=0.5) as proxy,
        anyio.fail_after(WAIT),
    ):
        async with httpx.AsyncClient(base_url=proxy.url, timeout=httpx.Timeout(0.2, connect=5)) as http:
            for n, _ in enumerate(kinds):
                try:
                    response = await http.post(
                        "/site-media/v1/folders",
                        json={"displayName": f"p{n}"},
                        headers={"Authorization": library.api_key},
                    )
                    seen.append(f"{response.status_code} {response.headers.get('retry-after', '-')}")
                except httpx.HTTPError as exc:
                    seen.append(type(exc).__name__)
    assert seen == ["429 1", "500 -", "503 -", "RemoteProtocolError", "RemoteProtocolError", "ReadTimeout", "200 -"]
    assert [rows(library, "folders", f"p{n}") for n in range(len(kinds))] == [0, 0, 0, 0, 1, 1, 1]
    counts = injector.counts()
    assert counts["requests"] == 7 and counts["reached_library"] == 3 and counts["injected_total"] == 6
