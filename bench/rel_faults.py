"""Faults: mixed MCP tool calls through the server while a seeded share of backend requests goes wrong.

The MCP server (in this process, driven by the SDK ``Client``: one session in the 2026-07-28 ``auto`` era with
``confirm=allow``, one on the 2025-11-25 handshake with the confirmation-token flow) talks to the embedded
library through `bench.faults`: in the test suite an in-process ``FaultTransport`` (no sockets,
backoffs on a virtual clock), in the report a ``FaultProxy`` on a loopback socket in front of the library served
by uvicorn (real drops, real stalls past the adapter's read timeout, backoffs waited at a fraction of their
length).

The mix is about 60% reads (search_files, search_folders, get_file, generate_download_url) and 40% writes
(create_folder, update_file, upload_file, move_to_trash, restore_from_trash, generate_upload_url). Each call ends
``ok``, failed cleanly (an isError that says the failure is temporary: call again, wait, or, for a write whose
outcome is unknown, check before calling again) or unexplained. Afterwards the library's database and blob
directory are read: every create appears at most once (and never when the call failed with "call again"), every
blob belongs to exactly one row, nothing is half-written, and every file whose upload succeeded is there with its
bytes (sha256).

``run(seed, calls)`` is the report's entry point (``python -m bench reliability``).
"""

from __future__ import annotations

import hashlib
import logging
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.lowlevel
import httpx
import uvicorn
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent
from pydantic import SecretStr

from bench.faults import FaultInjector, FaultPlan, FaultProxy, FaultTransport
from media_mcp.guard.backend import StaticBackend
from media_mcp.library.app import create_app
from media_mcp.library.server import listen
from media_mcp.library.service import Library
from media_mcp.server.app import create_server
from media_mcp.settings import LibrarySettings, ServerSettings
from media_mcp.wix.auth import ApiKeyAuth
from media_mcp.wix.client import WixMediaClient
from media_mcp.wix.resilience import RetryPolicy

HELP = "faults: mixed MCP calls with 20% of backend requests faulted; counts doubled and lost writes"
CALL_TIMEOUT = 30.0
"""Longest one tool call may take (a hang counts as unexplained)."""
READS = {"search_files": 15, "search_folders": 13, "get_file": 18, "generate_download_url": 14}
WRITES = {
    "create_folder": 9, "update_file": 8, "upload_file": 9, "move_to_trash": 5, "restore_from_trash": 5,
    "generate_upload_url": 4,
}  # fmt: skip
CREATES = frozenset({"create_folder", "upload_file"})
"""Writes that are never repeated once sent: these may end with an unknown outcome."""
SEED_FILES = 16
CHURN_FILES = 8
CHURN_FOLDERS = 3
TARGET_FOLDERS = 4
AMBIGUOUS_MARK = "did not confirm this change"
RETRY_MARKS = ("unavailable right now", "is rate-limiting")
Outcome = Literal["ok", "retryable", "ambiguous", "other"]
Json = dict[str, Any]


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def classify(result: CallToolResult) -> Outcome:
    """ok; a clear temporary failure (``retryable``); a write whose outcome is unknown (``ambiguous``); other."""
    if not result.is_error:
        return "ok"
    text = text_of(result).lower()
    if AMBIGUOUS_MARK in text and "check whether" in text:
        return "ambiguous"
    if any(mark in text for mark in RETRY_MARKS):
        return "retryable"
    return "other"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Ledger:
    """What the calls reported, to be held against what the library holds afterwards."""

    calls: int = 0
    tools: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)  # "tool:outcome"
    reads_ok: int = 0
    reads_failed_cleanly: int = 0
    writes_ok: int = 0
    writes_failed_cleanly: int = 0
    writes_outcome_unknown: int = 0
    unexplained: list[str] = field(default_factory=list)
    folders_ok: dict[str, str] = field(default_factory=dict)  # name -> id
    folders_unknown: set[str] = field(default_factory=set)
    folders_refused: set[str] = field(default_factory=set)
    uploads_ok: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (id, sha256)
    uploads_unknown: dict[str, str] = field(default_factory=dict)  # name -> sha256
    uploads_refused: set[str] = field(default_factory=set)
    seeds: dict[str, str] = field(default_factory=dict)  # id -> sha256


@dataclass
class Rig:
    """The pieces one run needs: the library, the fault layer, the adapter and two MCP sessions."""

    library: Library
    injector: FaultInjector
    wix: WixMediaClient
    sessions: dict[str, Client]  # "allow": auto era, confirm=allow; "token": legacy era, token flow
    upload_root: Path
    sleeps: list[float]
    clock: Callable[[], float] = time.monotonic
    """The adapter's clock (virtual in process)."""


def _servers(rig_dir: Path, wix: WixMediaClient, upload_root: Path, clock: Callable[[], float]) -> dict[str, Any]:
    backend = StaticBackend(wix, "local")
    servers = {}
    for confirm in ("allow", "token"):
        settings = ServerSettings(upload_roots=str(upload_root), confirm=confirm)
        server_dir = rig_dir / f"server-{confirm}"
        server_dir.mkdir(parents=True, exist_ok=True)
        servers[confirm] = create_server(settings, backend, data_dir=server_dir, clock=clock)
    return servers


@asynccontextmanager
async def _sessions(servers: dict[str, Any]) -> AsyncIterator[dict[str, Client]]:
    async with AsyncExitStack() as stack:
        allow = await stack.enter_async_context(Client(servers["allow"], mode="auto"))
        token = await stack.enter_async_context(Client(servers["token"], mode="legacy"))
        yield {"allow": allow, "token": token}


class VirtualTime:
    """A clock and a sleep for the adapter that never wait: a backoff moves the clock instead."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()

    def advance(self, seconds: float) -> None:
        """A stalled request's wait (its read timeout), without the backoff record."""
        self.now += seconds


@asynccontextmanager
async def in_process(
    library: Library, work: Path, plan: FaultPlan, *, clock: Callable[[], float] = time.time
) -> AsyncIterator[Rig]:
    """The adapter on the library through ``FaultTransport`` over ASGI: no sockets, no real waiting.

    The adapter's clock is virtual: backoffs and stalls (each costing its read timeout) move it, so its time
    budget is spent as it would be for real.
    """
    injector = FaultInjector(plan)
    virtual = VirtualTime()
    transport = FaultTransport(httpx.ASGITransport(app=create_app(library)), injector, on_stall=virtual.advance)
    upload_root = work / "uploads"
    upload_root.mkdir(parents=True, exist_ok=True)
    timeout = httpx.Timeout(30.0, connect=10.0)  # the adapter's own defaults
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as http:
        wix = WixMediaClient(
            "http://library.test", ApiKeyAuth(SecretStr(library.api_key), library.site_id), http=http,
            retry=RetryPolicy(rng=random.Random(plan.seed)), clock=virtual, sleep=virtual.sleep,
        )  # fmt: skip
        async with _sessions(_servers(work, wix, upload_root, clock)) as sessions:
            yield Rig(library, injector, wix, sessions, upload_root, virtual.sleeps, virtual)


class _LibraryServer:
    """The library served by uvicorn on 127.0.0.1 in a daemon thread."""

    def __init__(self, library: Library) -> None:
        self.sock = listen("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(library), log_level="error", lifespan="off", server_header=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> _LibraryServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


@asynccontextmanager
async def over_loopback(
    library: Library,
    work: Path,
    plan: FaultPlan,
    *,
    read_timeout: float = 1.0,
    stall_seconds: float = 1.5,
    time_scale: float = 0.02,
) -> AsyncIterator[Rig]:
    """The adapter on the library through ``FaultProxy`` on 127.0.0.1; backoffs wait ``time_scale`` of their length."""
    injector = FaultInjector(plan)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await anyio.sleep(seconds * time_scale)

    upload_root = work / "uploads"
    upload_root.mkdir(parents=True, exist_ok=True)
    with _LibraryServer(library) as served, FaultProxy(served.url, injector, stall_seconds=stall_seconds) as proxy:
        timeout = httpx.Timeout(read_timeout, connect=5.0, pool=30.0)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as http:
            wix = WixMediaClient(
                proxy.url, ApiKeyAuth(SecretStr(library.api_key), library.site_id), http=http,
                retry=RetryPolicy(rng=random.Random(plan.seed)), sleep=sleep,
            )  # fmt: skip
            async with _sessions(_servers(work, wix, upload_root, time.time)) as sessions:
                yield Rig(library, injector, wix, sessions, upload_root, sleeps)


class FaultMix:
    """Seeds the library, runs the mixed calls, and checks the library against the ledger."""

    def __init__(self, rig: Rig, seed: int) -> None:
        self.rig = rig
        self.rng = random.Random(seed)
        self.ledger = Ledger()
        self.stable: list[str] = []  # files that stay out of the trash: reads may use them
        self.editable: list[str] = []  # seed files update_file renames, moves and relabels
        self.targets: list[str] = []  # folders files move into
        self.churn_files: list[str] = []  # what trash/restore shuffle
        self.churn_folders: list[str] = []
        self._n = 0

    def _next(self) -> int:
        self._n += 1
        return self._n

    # --- seeding (faults paused) -------------------------------------------------------------

    async def _must(self, tool: str, args: Json) -> Json:
        with anyio.fail_after(CALL_TIMEOUT):
            result = await self.rig.sessions["allow"].call_tool(tool, args)
        if result.is_error or result.structured_content is None:
            raise RuntimeError(f"seeding {tool} failed: {text_of(result)}")
        content: Json = result.structured_content
        return content

    def _source(self, prefix: str) -> tuple[str, bytes]:
        name = f"{prefix}-{self._next()}.txt"
        data = self.rng.randbytes(self.rng.randint(64, 4096)).hex().encode()
        (self.rig.upload_root / name).write_bytes(data)
        return name, data

    async def seed(self) -> None:
        with self.rig.injector.paused():
            for i in range(TARGET_FOLDERS):
                self.targets.append((await self._must("create_folder", {"name": f"dir-{i}"}))["folder"]["id"])
            for i in range(CHURN_FOLDERS):
                self.churn_folders.append((await self._must("create_folder", {"name": f"churn-{i}"}))["folder"]["id"])
            for pool, count in ((self.editable, SEED_FILES), (self.churn_files, CHURN_FILES)):
                for _ in range(count):
                    name, data = self._source("seed")
                    file_id = (await self._must("upload_file", {"path": name}))["files"][0]["id"]
                    pool.append(file_id)
                    self.ledger.seeds[file_id] = sha256(data)
            self.stable.extend(self.editable)

    # --- the mix ------------------------------------------------------------------------------

    def _pick(self) -> str:
        tools = {**READS, **WRITES}
        return self.rng.choices(list(tools), list(tools.values()))[0]

    def _args(self, tool: str) -> Json:
        rng = self.rng
        if tool == "search_files":
            return rng.choice(
                [{}, {"query": "seed"}, {"folder_id": rng.choice(self.targets)}, {"media_types": ["DOCUMENT"]},
                 {"root": "TRASH_ROOT"}, {"sort_by": "name", "sort_order": "asc", "limit": 5}]
            )  # fmt: skip
        if tool == "search_folders":
            return rng.choice([{}, {"query": "dir"}, {"parent_folder_id": rng.choice(self.targets)}])
        if tool == "get_file":
            if rng.random() < 0.3:
                return {"file_ids": rng.sample(self.stable, 3)}
            return {"file_id": rng.choice(self.stable)}
        if tool == "generate_download_url":
            return {"file_id": rng.choice(self.stable)}
        if tool == "create_folder":
            args: Json = {"name": f"mk-{self._next()}"}
            if rng.random() < 0.5:
                args["parent_folder_id"] = rng.choice(self.targets)
            return args
        if tool == "update_file":
            change: Json = rng.choice(
                [{"name": f"renamed-{self._next()}.txt"}, {"folder_id": rng.choice(self.targets)},
                 {"labels": [f"l{self._next()}", "fault-test"]}]
            )  # fmt: skip
            return {"file_id": rng.choice(self.editable), **change}
        if tool in ("move_to_trash", "restore_from_trash"):
            args = {"file_ids": rng.sample(self.churn_files, rng.randint(1, 3))}
            if rng.random() < 0.3:
                args["folder_ids"] = [rng.choice(self.churn_folders)]
            return args
        if tool == "generate_upload_url":
            return {"file_name": f"gu-{self._next()}.png", "mime_type": "image/png"}
        if tool == "upload_file":
            return {}  # the source is written by the caller
        raise AssertionError(tool)

    async def _call(self, session: str, tool: str, args: Json) -> CallToolResult | None:
        """One call, bounded; None (and an unexplained entry) if it raised or hung."""
        self.ledger.calls += 1
        self.ledger.tools[tool] += 1
        try:
            with anyio.fail_after(CALL_TIMEOUT):
                return await self.rig.sessions[session].call_tool(tool, args)
        except (MCPError, TimeoutError) as exc:
            self.ledger.unexplained.append(f"{tool}: raised {type(exc).__name__}: {exc}")
            return None

    def _tally(self, tool: str, result: CallToolResult) -> Outcome:
        outcome = classify(result)
        ledger = self.ledger
        ledger.outcomes[f"{tool}:{outcome}"] += 1
        if tool in READS:
            if outcome == "ok":
                ledger.reads_ok += 1
            elif outcome == "retryable":
                ledger.reads_failed_cleanly += 1
            else:
                ledger.unexplained.append(f"{tool} (read): {text_of(result)[:300]}")
            return outcome
        if outcome == "ok":
            ledger.writes_ok += 1
        elif outcome == "retryable" or (outcome == "ambiguous" and tool in CREATES):
            ledger.writes_failed_cleanly += 1
            ledger.writes_outcome_unknown += outcome == "ambiguous"
        else:
            ledger.unexplained.append(f"{tool} (write, {outcome}): {text_of(result)[:300]}")
        return outcome

    async def one(self) -> None:
        tool = self._pick()
        session = "token" if self.rng.random() < 0.25 else "allow"
        args = self._args(tool)
        source: tuple[str, bytes] | None = None
        if tool == "upload_file":
            source = self._source("up")
            args = {"path": source[0]}
        result = await self._call(session, tool, args)
        if result is None:
            return
        if tool == "move_to_trash" and session == "token":
            await self._trash_with_token(args, result)
            return
        outcome = self._tally(tool, result)
        content = result.structured_content or {}
        if tool == "create_folder":
            name = args["name"]
            if outcome == "ok":
                self.ledger.folders_ok[name] = content["folder"]["id"]
            elif outcome == "ambiguous":
                self.ledger.folders_unknown.add(name)
            else:
                self.ledger.folders_refused.add(name)
        elif tool == "upload_file" and source is not None:
            name, data = source
            if outcome == "ok":
                self.ledger.uploads_ok[name] = (content["files"][0]["id"], sha256(data))
                self.stable.append(content["files"][0]["id"])
            elif outcome == "ambiguous":
                self.ledger.uploads_unknown[name] = sha256(data)
            else:
                self.ledger.uploads_refused.add(name)

    async def _trash_with_token(self, args: Json, first: CallToolResult) -> None:
        """The token flow: the first answer must ask for confirmation; the second call carries the token."""
        content = first.structured_content or {}
        if first.is_error or content.get("status") != "confirmation_required":
            self._tally("move_to_trash", first)
            return
        self.ledger.writes_ok += 1  # the preview was the answer asked for
        self.ledger.outcomes["move_to_trash:preview"] += 1
        second = await self._call(
            "token", "move_to_trash", {**args, "confirmation_token": content["confirmation_token"]}
        )
        if second is not None:
            self._tally("move_to_trash", second)

    async def run(self, calls: int, workers: int = 1) -> None:
        """``calls`` tool calls (a token-flow trash counts as two), by ``workers`` concurrent callers."""

        async def worker() -> None:
            while self.ledger.calls < calls:
                await self.one()

        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker)

    # --- the check ------------------------------------------------------------------------------

    def check(self) -> Json:
        """The library's rows and blobs against the ledger: duplicates, losses and leftovers."""
        ledger = self.ledger
        with self.rig.library.db.read() as conn:
            folders = [(r["id"], r["display_name"]) for r in conn.execute("SELECT id, display_name FROM folders")]
            files = {
                r["id"]: (r["display_name"], r["blob"])
                for r in conn.execute("SELECT id, display_name, blob FROM files")
            }
        data = self.rig.library.data
        on_disk = {p.name: p for p in data.blobs.glob("*/*") if p.is_file()}
        folder_names = Counter(name for _, name in folders)
        file_names = Counter(name for name, _ in files.values())
        problems: list[str] = []

        duplicates = sum(n - 1 for name, n in folder_names.items() if name.startswith("mk-") and n > 1)
        duplicates += sum(n - 1 for name, n in file_names.items() if name.startswith("up-") and n > 1)
        owned = Counter(blob for _, blob in files.values() if blob)
        duplicates += sum(n - 1 for n in owned.values() if n > 1)
        orphans = sorted(set(on_disk) - set(owned))
        duplicates += len(orphans)
        if orphans:
            problems.append(f"{len(orphans)} blob(s) no row owns")

        lost = 0
        folder_ids = {fid for fid, _ in folders}
        for name, fid in ledger.folders_ok.items():
            if fid not in folder_ids or folder_names[name] != 1:
                lost += 1
                problems.append(f"folder {name} ({fid}) reported created but not found once")

        def intact(file_id: str, digest: str) -> bool:
            row = files.get(file_id)
            blob = on_disk.get(row[1] or "") if row else None
            return blob is not None and sha256(blob.read_bytes()) == digest

        for name, (file_id, digest) in ledger.uploads_ok.items():
            if not intact(file_id, digest):
                lost += 1
                problems.append(f"upload {name} ({file_id}) reported done but missing or altered")
        for file_id, digest in ledger.seeds.items():
            if not intact(file_id, digest):
                lost += 1
                problems.append(f"seed file {file_id} missing or altered")
        lost += sum(1 for blob in owned if blob not in on_disk)

        # a call that failed with "call again" must not have happened: calling again would do it twice
        done_anyway = [n for n in ledger.folders_refused if folder_names[n]]
        done_anyway += [n for n in ledger.uploads_refused if file_names[n]]
        problems += [f"{n}: failed with 'call again' but was done" for n in done_anyway]
        unknown_done = sum(1 for n in ledger.folders_unknown if folder_names[n])
        unknown_done += sum(1 for n in ledger.uploads_unknown if file_names[n])
        by_name = {name: (fid, blob) for fid, (name, blob) in files.items()}
        for name, digest in ledger.uploads_unknown.items():
            if name in by_name and not intact(by_name[name][0], digest):
                lost += 1
                problems.append(f"upload {name} stored with other bytes")
        leftovers = [p.name for p in data.incoming.iterdir()] if data.incoming.exists() else []
        if leftovers:
            problems.append(f"{len(leftovers)} partial upload(s) left in incoming/")
        return {
            "duplicates": duplicates,
            "lost": lost,
            "failed_but_done": len(done_anyway),
            "outcome_unknown_done": unknown_done,
            "outcome_unknown_not_done": ledger.writes_outcome_unknown - unknown_done,
            "partial_leftovers": len(leftovers),
            "problems": problems,
        }

    def report(self) -> Json:
        ledger = self.ledger
        checked = self.check()
        counts = self.rig.injector.counts()
        reads = ledger.reads_ok + ledger.reads_failed_cleanly
        unexplained = len(ledger.unexplained) + checked["failed_but_done"]
        clean = not (checked["duplicates"] or checked["lost"] or checked["partial_leftovers"] or unexplained)
        return {
            "ok": clean,
            "calls": ledger.calls,
            "tools": dict(sorted(ledger.tools.items())),
            "outcomes": dict(sorted(ledger.outcomes.items())),
            "faults_injected": counts["injected"],
            "faults_total": counts["injected_total"],
            "backend_requests": counts["requests"],
            "reached_library": counts["reached_library"],
            "reads": reads,
            "reads_ok": ledger.reads_ok,
            "reads_failed_cleanly": ledger.reads_failed_cleanly,
            "writes_ok": ledger.writes_ok,
            "writes_failed_cleanly": ledger.writes_failed_cleanly,
            "writes_outcome_unknown": ledger.writes_outcome_unknown,
            "outcome_unknown_done": checked["outcome_unknown_done"],
            "duplicates": checked["duplicates"],
            "lost": checked["lost"],
            "partial_leftovers": checked["partial_leftovers"],
            "unexplained": unexplained,
            "unexplained_examples": ledger.unexplained[:5],
            "problems": checked["problems"][:10],
            "backoffs": len(self.rig.sleeps),
            "backoff_seconds_asked": round(sum(self.rig.sleeps), 1),
        }


async def _run(seed: int, calls: int, work: Path, workers: int) -> Json:
    started = time.perf_counter()
    settings = LibrarySettings(data_dir=work / "data", library_allow_private_imports=False)
    with Library.open(settings) as library:
        async with over_loopback(library, work, FaultPlan(rate=0.2, seed=seed)) as rig:
            mix = FaultMix(rig, seed)
            await mix.seed()
            await mix.run(calls, workers=workers)
            report = mix.report()
    return {"seed": seed, "transport": "loopback proxy", "fault_rate": 0.2, "workers": workers, **report,
            "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


def run(seed: int, calls: int, workers: int = 16) -> dict[str, Any]:
    """The mix at report scale over a loopback socket; the counts for the report table."""
    quiet = [logging.getLogger(name) for name in ("media_mcp.wix", "media_mcp.library", "media_mcp.server")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)  # every retry logs a warning: thousands of lines otherwise
    try:
        with tempfile.TemporaryDirectory(prefix="media-mcp-faults-") as tmp:
            return anyio.run(_run, seed, calls, Path(tmp), workers)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def _main() -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.rel_faults", description=HELP)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    print(json.dumps(run(args.seed, args.calls, args.workers), indent=2))


if __name__ == "__main__":
    _main()
