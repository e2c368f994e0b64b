"""Load: concurrent MCP sessions over streamable HTTP against ``media-mcp --transport http`` on the embedded library.

The server is spawned as a child process (its own data directory, a free loopback port, ``MEDIA_MCP_CONFIRM=allow``,
an upload root) on a library that already holds a site's worth of files (`CATALOG_FILES`, written into the data
directory before the server starts), and seeded through MCP: a folder of shared files every session reads, one file
per session that only that session writes (so concurrent writes never race each other into "expected" errors), and
a scratch folder for ``create_folder``. Then a soak: a warm-up round and ``rounds`` measured rounds; in each,
``sessions`` sessions open at once (alternately the 2025-11-25 ``initialize`` handshake and the 2026-07-28 ``auto``
era) and make ``calls`` mixed calls each: ``search_files``, ``get_file``, ``search_folders``,
``generate_download_url``, ``create_folder``, ``update_file`` and a few ``move_to_trash``/``restore_from_trash``
pairs on the session's own file.

Every call's latency and outcome is recorded (a tool error, an exception or a timeout is an error). After the
seeding, the warm-up and each round the server's resident memory is read from ``/proc/<pid>/status`` (``VmRSS``
covers every thread, so the embedded library's thread is included), once it has settled. Memory must plateau: the
least-squares slope of VmRSS over the last half of the rounds (`memory_slope`), in MiB per round and per 1,000
calls, stays under `MEMORY_SLOPE_BOUND_MIB_PER_ROUND`. The first half is where caches and allocators fill up; its
growth is reported, not bounded. Nothing tunes the allocator: the server runs as a user runs it. At the end the
library is checked for lost or doubled writes: the scratch folder holds exactly the folders that ``create_folder``
reported, and every session's file carries the name it last set and is not in the trash.

The client runs in this process on the same machine as the server, so latency includes the client's own work.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from bench.library import RARE_COUNT, seed_catalog

CALL_TIMEOUT = 30.0
"""Longest a single tool call may take before it counts as an error (timeout)."""
SESSION_OPEN_TIMEOUT = 30.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
SETTLE_TIMEOUT = 3.0
"""Longest the memory reading waits for RSS to settle after a round."""
SETTLE_STEP = 0.25
SETTLE_BYTES = 256 * 1024
CATALOG_FILES = 20_000
"""Files in the library before the sessions start (catalog rows only, in 40 folders; see `bench.library.seed_catalog`).

A site in use has files, and the load should meet the library in the state it serves them in. It matters to the
memory reading too: the catalog's database (about 24 MiB) is far larger than SQLite's page cache (2 MiB), so the cache
is full by the end of the warm-up, as on any site after its first minutes, and stays at its bound. On an empty library
the cache instead keeps growing with the database the rounds write to (~0.15 MiB a round, until 2 MiB), which a
reading of three rounds cannot tell from a leak.
"""
ROUNDS = 30
"""Measured rounds of the soak by default (after the warm-up): 150,000 calls at the default size, about 20 minutes.

The first half is where caches and glibc's arenas fill up, and at this size they take about fifteen rounds to: two
30-round runs grew 0.69 and 0.59 MiB a round over rounds 1-15, then 0.39 and 0.40 over rounds 16-30, the second flat
over its last four (a third, 0.66 then 0.51, with one step of 1.9 MiB in round 28). A 12-round soak ends while they
still fill (0.48 and 0.59 MiB a round over rounds 7-12, one on each side of the bound), so it could not tell a plateau
from a slow leak (docs/reliability.md). With the library's page caches bounded, three 30-round runs grew 0.18-0.26
MiB a round over rounds 1-15 and 0.04-0.08 over rounds 16-30."""
MIN_ROUNDS = 4
"""The fewest rounds that give the last half two readings, so a slope."""
MEMORY_SLOPE_BOUND_MIB_PER_ROUND = 0.5
"""Bound on the least-squares slope of VmRSS over the last half of the rounds, in MiB per round: at the default size
(50 sessions x 100 calls, 5,000 calls a round) about 100 bytes per call, half the per-call growth the three-repeat
reading it replaces allowed (1 MiB a round). A soak is for the default size; smaller runs pass their own bound.

Measured on 2 shared cores, without tuning the allocator, 12 rounds, before the default became 30 (figures in
docs/reliability.md):

* the library as of commit 9c0ebdb: VmRSS grows about 0.7 MiB a round over the first rounds, then flattens into rare
  steps: last-half slopes 0.16, 0.21 and 0.23 MiB a round (0.14 over rounds 9-16 of a 16-round run);
* with its read connections of their own and separate search threads (53f973c): 1.54, 1.74 and 2.07 MiB a round,
  not flattening in 12 rounds; the server has 9-10 threads instead of 6. 0.79 MiB a round with MALLOC_ARENA_MAX=1;
* on uvloop with 2 store and 2 search threads (c51d243): 0.48 and 0.59 MiB a round over rounds 7-12; over rounds
  16-30 of three 30-round runs, 0.39, 0.40 and 0.51 (and 0.42 on a faster machine);
* with every connection's page cache bounded to 512 KiB (`media_mcp.library.db.CACHE_KIB`): 0.06, 0.04 and 0.08 MiB a
  round over rounds 16-30 of three 30-round runs, each flat over its last eight rounds or more.

The ``heap_on_sigusr2`` diagnostic says what grows, in both: nothing that lives. glibc's bytes in use, pymalloc's
blocks and the objects the collector tracks stay flat from the warm-up to round 12 (in use within 0.3 MiB, slope
0.01 and -0.04 MiB a round); the growth is free memory glibc keeps (``mallinfo2``'s free bytes, slope 0.32 against
1.57 MiB a round), the fragmentation of threads allocating and freeing at once.
"""
SHARED_FILES = 10
PNG_16x8 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000010000000080800000000d51d204b"
    "0000000c4944415478da6360181c00000088000174b839670000000049454e44ae426082"
)
MIX = {
    "search_files": 25,
    "get_file": 20,
    "search_folders": 10,
    "generate_download_url": 15,
    "create_folder": 8,
    "update_file": 14,
}
"""Relative weights of the single calls; trash/restore pairs come on top (one pair per 25 calls, at least one)."""


# --- the server process ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command() -> list[str]:
    """``media-mcp`` from this interpreter's environment (``python -m media_mcp`` if the script is not there)."""
    script = Path(sys.executable).parent / "media-mcp"
    return [str(script)] if script.exists() else [sys.executable, "-m", "media_mcp"]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


MEMORY_FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem", "Threads")


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and its parts (anonymous, file-backed, shared) in bytes, and the thread count, from /proc/<pid>/status."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in MEMORY_FIELDS:
            number = int(value.split()[0])
            found[key] = number if key == "Threads" else number * 1024
    return found


@dataclass
class Server:
    work: Path
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    uploads: Path
    stop_signal: str = ""
    collected: Path | None = None
    """Diagnostic runs only: the file the server's SIGUSR1 handler appends a line to after a full garbage collection."""
    heap: Path | None = None
    """Diagnostic runs only: the file the server's SIGUSR2 handler appends its heap figures to (`DIAGNOSTIC_SITE`)."""

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the server exited with {self.proc.returncode}: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def settled_memory(self) -> dict[str, int]:
        """Memory once two VmRSS readings SETTLE_STEP apart differ by less than SETTLE_BYTES (within SETTLE_TIMEOUT)."""
        if self.collected is not None:
            self._collect(self.collected)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        memory = _memory(self.proc.pid)
        while time.monotonic() < deadline:
            self._pause(SETTLE_STEP)
            now = _memory(self.proc.pid)
            settled = abs(now.get("VmRSS", 0) - memory.get("VmRSS", 0)) < SETTLE_BYTES
            memory = now
            if settled:
                break
        return memory

    def heap_figures(self) -> dict[str, int] | None:
        """The server's heap figures (diagnostic runs with ``heap_on_sigusr2``), asked for with SIGUSR2."""
        if self.heap is None:
            return None
        before = self.heap.stat().st_size if self.heap.exists() else 0
        self.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while not (self.heap.exists() and self.heap.read_bytes()[before:].endswith(b"\n")):
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not report its heap after SIGUSR2")
            self._pause(0.05)
        figures: dict[str, int] = json.loads(self.heap.read_bytes()[before:])
        return figures

    def _collect(self, marker: Path) -> None:
        """Have the server run a full garbage collection (diagnostic runs), waiting at most SETTLE_TIMEOUT for it."""
        before = marker.stat().st_size if marker.exists() else 0
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while not (marker.exists() and marker.stat().st_size > before):
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not report a garbage collection after SIGUSR1")
            self._pause(0.05)

    def _pause(self, seconds: float) -> None:
        """Wait for the child to exit, at most ``seconds``: a bounded pause that notices a crash at once."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=seconds)
        self.alive()

    def wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while True:
                self.alive()
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{self.url}/healthz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the server did not answer /healthz within {START_TIMEOUT:.0f}s")
                self._pause(0.1)

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown, then the backend closed), SIGKILL only if it does not exit within
        STOP_TIMEOUT."""
        if self.proc.poll() is not None:
            self.stop_signal = self.stop_signal or "exited by itself"
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
            self.stop_signal = "SIGTERM"
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
            self.stop_signal = f"SIGKILL (no exit within {STOP_TIMEOUT:.0f}s of SIGTERM)"


@contextlib.contextmanager
def spawn(work: Path, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    uploads = work / "uploads"
    for sub in (uploads, work / "home", work / "data"):
        sub.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(work / "home"),
        "MEDIA_MCP_BACKEND": "local",
        "MEDIA_MCP_DATA_DIR": str(work / "data"),
        "MEDIA_MCP_LIBRARY_PORT": "0",
        "MEDIA_MCP_UPLOAD_ROOTS": str(uploads),
        "MEDIA_MCP_CONFIRM": "allow",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    port = _free_port()
    argv = [*_command(), "--transport", "http", "--host", "127.0.0.1", "--port", str(port)]
    log = work / "server.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=work)
    server = Server(work, proc, f"http://127.0.0.1:{port}", log, uploads)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


# --- the workload --------------------------------------------------------------------------------


@dataclass
class Call:
    tool: str
    seconds: float
    error: str | None


@dataclass
class Seed:
    shared_folder: str
    owned_folder: str
    scratch_folder: str
    shared: list[str]
    owned: list[str]


@dataclass
class Tally:
    """What the writes should have left behind, for the consistency check."""

    folders_created: int = 0
    names: dict[str, str] = field(default_factory=dict)


class Plan:
    """One session's calls in one round: the mix drawn from a seeded RNG, pairs at random places."""

    def __init__(self, index: int, round_no: int, calls: int, seed: Seed, rng: random.Random) -> None:
        self.index, self.round_no, self.seed, self.rng = index, round_no, seed, rng
        self.own = seed.owned[index]
        pairs = min(calls // 2, max(1, calls // 25))
        singles = rng.choices(list(MIX), weights=list(MIX.values()), k=calls - 2 * pairs)
        steps: list[str] = list(singles)
        for _ in range(pairs):
            steps.insert(rng.randrange(len(steps) + 1), "pair")
        self.steps = steps

    def calls(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for k, step in enumerate(self.steps):
            if step == "pair":
                yield "move_to_trash", {"file_ids": [self.own]}
                yield "restore_from_trash", {"file_ids": [self.own]}
            else:
                yield step, self._arguments(step, k)

    def _arguments(self, tool: str, k: int) -> dict[str, Any]:
        rng, seed = self.rng, self.seed
        if tool == "search_files":
            return rng.choice([
                {"query": "shared"},
                {"folder_id": seed.shared_folder, "limit": 10},
                {"query": "png", "limit": 10, "sort_by": "name"},
                {"folder_id": seed.owned_folder, "limit": 50, "fields": ["id", "name"]},
                {"media_types": ["IMAGE"], "limit": 5},
            ])  # fmt: skip
        if tool == "get_file":
            if rng.random() < 0.3:
                return {"file_ids": rng.sample(seed.shared, min(5, len(seed.shared)))}
            return {"file_id": rng.choice([*seed.shared, self.own])}
        if tool == "search_folders":
            return rng.choice([{"query": "load"}, {"parent_folder_id": seed.scratch_folder, "limit": 10}, {}])
        if tool == "generate_download_url":
            return {"file_id": rng.choice([*seed.shared, self.own]), "expiration_minutes": 5}
        if tool == "create_folder":
            return {"name": f"s{self.index}-r{self.round_no}-c{k}", "parent_folder_id": seed.scratch_folder}
        if tool == "update_file":
            if rng.random() < 0.5:
                return {"file_id": self.own, "labels": [f"round-{self.round_no}", f"call-{k}"]}
            return {"file_id": self.own, "name": f"owned-{self.index:03d}-r{self.round_no}-c{k}.png"}
        raise ValueError(tool)


def _error_of(tool: str, result: Any) -> str | None:
    """The error a CallToolResult carries, or a wrong answer, as one line; None when it is fine."""
    if result.is_error:
        text = " ".join(getattr(block, "text", "") for block in result.content)
        return f"tool error: {text[:300]}"
    data = result.structured_content
    if data is None:
        return "no structured content"
    if tool == "move_to_trash" and data.get("status") != "done":
        return f"move_to_trash answered {data.get('status')!r}"
    return None


async def _session(url: str, mode: str, plan: Plan, tally: Tally, out: list[Call]) -> None:
    from mcp import Client

    calls = list(plan.calls())
    done = 0
    opened = False
    try:
        # read_timeout_seconds bounds the handshake; fail_after bounds each call (the round bounds the rest)
        async with Client(url, mode=mode, read_timeout_seconds=CALL_TIMEOUT) as client:
            opened = True
            for tool, arguments in calls:
                began = time.perf_counter()
                error: str | None
                try:
                    with anyio.fail_after(CALL_TIMEOUT):
                        result = await client.call_tool(tool, arguments)
                    error = _error_of(tool, result)
                except TimeoutError:
                    error = f"timeout after {CALL_TIMEOUT:.0f}s"
                except Exception as exc:
                    error = _describe(exc)
                out.append(Call(tool, time.perf_counter() - began, error))
                done += 1
                if error is None and tool == "create_folder":
                    tally.folders_created += 1
                if error is None and tool == "update_file" and "name" in arguments:
                    tally.names[plan.own] = arguments["name"]
    except Exception as exc:
        what = "session failed" if opened else "session did not open"
        out.extend(Call(tool, 0.0, f"{what}: {_describe(exc)}") for tool, _ in calls[done:])
        if done == len(calls):
            out.append(Call("(session close)", 0.0, f"session did not close cleanly: {_describe(exc)}"))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _describe(exc.exceptions[0])
    return f"{type(exc).__name__}: {exc}"[:300]


async def _round(url: str, sessions: int, calls: int, seed: Seed, round_no: int, rng_seed: int, tally: Tally) -> Round:
    out: list[Call] = []
    began = time.perf_counter()
    with anyio.fail_after(_round_timeout(sessions, calls)):
        async with anyio.create_task_group() as group:
            for i in range(sessions):
                plan = Plan(i, round_no, calls, seed, random.Random(f"{rng_seed}-{round_no}-{i}"))
                group.start_soon(_session, url, "legacy" if i % 2 == 0 else "auto", plan, tally, out)
    return Round.of(round_no, out, time.perf_counter() - began)


def _round_timeout(sessions: int, calls: int) -> float:
    return 120.0 + 0.05 * sessions * calls


# --- seeding and the final check -----------------------------------------------------------------


async def _checked(client: Any, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    with anyio.fail_after(CALL_TIMEOUT):
        result = await client.call_tool(tool, arguments)
    problem = _error_of(tool, result)
    if problem:
        raise RuntimeError(f"{tool} failed: {problem}")
    data: dict[str, Any] = result.structured_content
    return data


async def _seed(server: Server, sessions: int) -> Seed:
    from mcp import Client

    async with Client(f"{server.url}/mcp", mode="legacy") as client:
        folders = []
        for name in ("load-shared", "load-owned", "load-scratch"):
            folders.append((await _checked(client, "create_folder", {"name": name}))["folder"]["id"])
        ids: dict[str, list[str]] = {"shared": [], "owned": []}
        for kind, folder, count in (("shared", folders[0], SHARED_FILES), ("owned", folders[1], sessions)):
            for i in range(count):
                name = f"{kind}-{i:03d}.png"
                (server.uploads / name).write_bytes(PNG_16x8)
                uploaded = await _checked(client, "upload_file", {"path": name, "folder_id": folder})
                ids[kind].append(uploaded["files"][0]["id"])
    return Seed(folders[0], folders[1], folders[2], ids["shared"], ids["owned"])


def _seed_catalog(data_dir: Path, files: int, seed: int) -> dict[str, Any]:
    """Write ``files`` catalog rows into a fresh data directory (before any server opens it)."""
    if not files:
        return {"files": 0}
    data_dir.mkdir(parents=True, exist_ok=True)
    done = seed_catalog(data_dir, files, random.Random(seed))
    return {"files": done.files, "folders": done.folders, "database_mib": done.database_mib}


async def _consistency(url: str, seed: Seed, tally: Tally) -> dict[str, Any]:
    """Nothing lost, nothing doubled: folder count in scratch, and each owned file's last name, out of the trash."""
    from mcp import Client

    problems: list[str] = []
    async with Client(url, mode="legacy") as client:
        scratch = 0
        cursor: str | None = None
        for _ in range(10_000):
            arguments: dict[str, Any] = {"parent_folder_id": seed.scratch_folder, "limit": 100}
            if cursor:
                arguments["cursor"] = cursor
            page = await _checked(client, "search_folders", arguments)
            scratch += len(page["folders"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        if scratch != tally.folders_created:
            problems.append(f"scratch folder holds {scratch} folders, create_folder reported {tally.folders_created}")
        for start in range(0, len(seed.owned), 100):
            chunk = seed.owned[start : start + 100]
            details = await _checked(client, "get_file", {"file_ids": chunk})
            for file in details["files"]:
                if file.get("in_trash"):
                    problems.append(f"{file['id']} is still in the trash")
                if file["id"] in tally.names and file["name"] != tally.names[file["id"]]:
                    problems.append(f"{file['id']} is named {file['name']!r}, expected {tally.names[file['id']]!r}")
            if len(details["files"]) != len(chunk):
                problems.append(f"get_file returned {len(details['files'])} of {len(chunk)} owned files")
    return {
        "ok": not problems,
        "folders_created": tally.folders_created,
        "folders_found": scratch,
        "owned_files": len(seed.owned),
        "problems": problems[:20],
    }


# --- results -------------------------------------------------------------------------------------


def _percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_ms:
        return 0.0
    return sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)]


@dataclass
class Round:
    round: int
    calls: list[Call]
    wall_s: float
    memory: dict[str, int] = field(default_factory=dict)
    heap: dict[str, int] | None = None
    """Diagnostic runs with ``heap_on_sigusr2`` only: the server's heap after the round (see `DIAGNOSTIC_SITE`)."""
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    @classmethod
    def of(cls, round_no: int, calls: list[Call], wall_s: float) -> Round:
        return cls(round_no, calls, wall_s)

    @property
    def rss_bytes(self) -> int:
        return self.memory.get("VmRSS", 0)

    @property
    def timed(self) -> list[Call]:
        return [c for c in self.calls if not c.tool.startswith("(")]

    @property
    def errors(self) -> int:
        return sum(1 for c in self.calls if c.error)

    def summary(self) -> dict[str, Any]:
        ms = sorted(c.seconds * 1000 for c in self.timed)
        return {
            "round": "warm-up" if self.round == 0 else self.round,
            "calls": len(self.timed),
            "errors": self.errors,
            "wall_s": round(self.wall_s, 2),
            "throughput_calls_per_s": round(len(self.timed) / self.wall_s, 1) if self.wall_s else 0.0,
            "p50_ms": round(_percentile(ms, 0.50), 2),
            "p99_ms": round(_percentile(ms, 0.99), 2),
            "max_ms": round(ms[-1], 2) if ms else 0.0,
            "rss_mib": _mib(self.rss_bytes),
            "rss_anon_mib": _mib(self.memory.get("RssAnon", 0)),
            "rss_file_mib": _mib(self.memory.get("RssFile", 0) + self.memory.get("RssShmem", 0)),
            "threads": self.memory.get("Threads", 0),
            **(
                {}
                if self.heap is None
                else {
                    "malloc_in_use_mib": _mib(self.heap.get("malloc_in_use", 0)),
                    "malloc_free_mib": _mib(self.heap.get("malloc_free", 0)),
                    "sqlite_in_use_mib": _mib(self.heap.get("sqlite_in_use", 0)),
                    "pymalloc_blocks": self.heap.get("pymalloc_blocks", 0),
                    "gc_objects": self.heap.get("gc_objects", 0),
                }
            ),  # fmt: skip
            "server_cpu_ms_per_call": round(1000 * self.server_cpu_s / len(ms), 2) if ms else 0.0,
            "client_cpu_ms_per_call": round(1000 * self.client_cpu_s / len(ms), 2) if ms else 0.0,
        }


def _mib(value: int) -> float:
    return round(value / 2**20, 2)


def slope(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of ``(x, y)`` points (0 with fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if not spread:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def memory_slope(measured: list[Round], bound_mib_per_round: float) -> dict[str, Any]:
    """VmRSS over the soak: the least-squares slope over the last half of the measured rounds (the plateau, bounded)
    and over the first half (caches and allocators filling up: reported only)."""
    half = len(measured) // 2
    last, first = measured[len(measured) - half :], measured[: len(measured) - half]
    calls_per_round = statistics.fmean(len(r.timed) for r in last) if last else 0.0

    def per_round(rounds: list[Round]) -> float:
        return slope([(r.round, r.rss_bytes / 2**20) for r in rounds])

    last_slope = per_round(last)
    heap: dict[str, float] = {}
    if last and all(r.heap is not None for r in last):
        for key in ("malloc_in_use", "malloc_free", "sqlite_in_use"):
            heap[f"{key}_slope_mib_per_round"] = round(
                slope([(r.round, (r.heap or {}).get(key, 0) / 2**20) for r in last]), 4
            )
        heap["pymalloc_blocks_slope_per_round"] = round(
            slope([(r.round, (r.heap or {}).get("pymalloc_blocks", 0)) for r in last]), 1
        )
    return {
        "window": [last[0].round, last[-1].round] if last else [],
        "slope_mib_per_round": round(last_slope, 4),
        "slope_kib_per_1k_calls": round(last_slope * 1024 / calls_per_round * 1000, 2) if calls_per_round else 0.0,
        "first_half_slope_mib_per_round": round(per_round(first), 4),
        "growth_last_half_mib": _mib(last[-1].rss_bytes - last[0].rss_bytes) if last else 0.0,
        "growth_first_half_mib": _mib(first[-1].rss_bytes - first[0].rss_bytes) if first else 0.0,
        "bound_mib_per_round": bound_mib_per_round,
        "plateaued": len(last) >= 2 and last_slope <= bound_mib_per_round,
        **heap,
    }


def _report(sessions: int, calls: int, rounds: list[Round], start_rss: int, bound: float) -> dict[str, Any]:
    measured = [r for r in rounds if r.round > 0]
    timed = [c for r in measured for c in r.timed]
    ms = sorted(c.seconds * 1000 for c in timed)
    wall = sum(r.wall_s for r in measured)
    per_tool: dict[str, dict[str, Any]] = {}
    for tool in sorted({c.tool for c in timed}):
        values = sorted(c.seconds * 1000 for c in timed if c.tool == tool)
        per_tool[tool] = {
            "calls": len(values),
            "errors": sum(1 for c in timed if c.tool == tool and c.error),
            "p50_ms": round(_percentile(values, 0.5), 2),
            "p99_ms": round(_percentile(values, 0.99), 2),
        }
    errors = Counter(c.error for r in rounds for c in r.calls if c.error)
    warm = rounds[0].rss_bytes if rounds and rounds[0].round == 0 else start_rss
    return {
        "sessions": sessions,
        "calls_per_session": calls,
        "rounds_measured": len(measured),
        "modes": {"legacy": (sessions + 1) // 2, "auto": sessions // 2},
        "calls": len(timed),
        "errors": sum(r.errors for r in rounds),
        "error_samples": [f"{n} x {text}" for text, n in errors.most_common(10)],
        "p50_ms": round(_percentile(ms, 0.50), 2),
        "p99_ms": round(_percentile(ms, 0.99), 2),
        "max_ms": round(ms[-1], 2) if ms else 0.0,
        "throughput_calls_per_s": round(len(timed) / wall, 1) if wall else 0.0,
        "per_tool": per_tool,
        "rounds": [r.summary() for r in rounds],
        "rss_mib": {
            "after_seed": _mib(start_rss),
            "after_warmup": _mib(warm),
            "per_round": [_mib(r.rss_bytes) for r in measured],
        },
        # from the warm-up to round 1, then from each round to the next
        "memory_growth_per_round_mib": [_mib(b.rss_bytes - a.rss_bytes) for a, b in itertools.pairwise(rounds)],
        "memory_growth_since_warmup_mib": _mib(measured[-1].rss_bytes - warm) if measured else 0.0,
        "memory_slope": memory_slope(measured, bound),
    }


# --- entry point ---------------------------------------------------------------------------------


async def _drive(
    server: Server, sessions: int, calls: int, rounds_wanted: int, seed_value: int, bound: float
) -> dict[str, Any]:
    url = f"{server.url}/mcp"
    seed = await _seed(server, sessions)
    start_rss = server.settled_memory()["VmRSS"]
    tally = Tally()
    rounds: list[Round] = []
    for round_no in range(rounds_wanted + 1):  # round 0 is the warm-up
        server_cpu, client_cpu = _cpu_seconds(server.proc.pid), time.process_time()
        done = await _round(url, sessions, calls, seed, round_no, seed_value, tally)
        done.server_cpu_s = _cpu_seconds(server.proc.pid) - server_cpu
        done.client_cpu_s = time.process_time() - client_cpu
        done.memory = server.settled_memory()
        done.heap = server.heap_figures()
        rounds.append(done)
        print(
            f"  load {'warm-up' if round_no == 0 else f'round {round_no}/{rounds_wanted}'}: {len(done.timed)} calls, "
            f"{done.errors} errors, {done.wall_s:.1f}s, RSS {_mib(done.rss_bytes)} MiB",
            file=sys.stderr,
            flush=True,
        )
    report = _report(sessions, calls, rounds, start_rss, bound)
    report["consistency"] = await _consistency(url, seed, tally)
    return report


DIAGNOSTIC_SITE = {
    "string_cache_off": """\
import pydantic_core

_from_json = pydantic_core.from_json


def _uncached(data, *args, **kwargs):
    kwargs["cache_strings"] = False
    return _from_json(data, *args, **kwargs)


pydantic_core.from_json = _uncached
""",
    "collect_on_sigusr1": """\
import gc
import os
import signal

_marker = os.environ["MEDIA_MCP_BENCH_COLLECTED"]


def _collect(signum, frame):
    gc.collect()
    with open(_marker, "a") as fh:
        fh.write("collected\\n")


signal.signal(signal.SIGUSR1, _collect)
""",
    "heap_on_sigusr2": """\
import ctypes
import gc
import json
import os
import signal
import sys

_heap_file = os.environ["MEDIA_MCP_BENCH_HEAP"]


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


try:
    _mallinfo2 = ctypes.CDLL(None).mallinfo2
    _mallinfo2.restype = _MallInfo2
except (OSError, AttributeError):  # glibc before 2.33, or another C library
    _mallinfo2 = None

try:  # the SQLite library the sqlite3 module loaded (dlopen gives back the same copy)
    import ctypes.util
    _sqlite_memory = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0").sqlite3_memory_used
    _sqlite_memory.restype = ctypes.c_int64
except (OSError, AttributeError):  # SQLite linked into Python itself, or not found
    _sqlite_memory = None


def _heap(signum, frame):
    figures = {"pymalloc_blocks": sys.getallocatedblocks(), "gc_objects": len(gc.get_objects())}
    if _mallinfo2 is not None:
        info = _mallinfo2()
        figures.update(malloc_in_use=info.uordblks + info.hblkhd, malloc_free=info.fordblks, malloc_arena=info.arena)
    if _sqlite_memory is not None:
        figures["sqlite_in_use"] = _sqlite_memory()
    with open(_heap_file, "a") as fh:
        fh.write(json.dumps(figures) + "\\n")


signal.signal(signal.SIGUSR2, _heap)
""",
}
"""Code for the server's ``sitecustomize`` in a diagnostic run only (see `MEMORY_SLOPE_BOUND_MIB_PER_ROUND`).

``string_cache_off``: the server's ``pydantic_core.from_json`` calls (the MCP SDK parses every HTTP request body with
it) stop filling pydantic-core's string cache. ``collect_on_sigusr1``: SIGUSR1 runs a full garbage collection, which
the bench asks for before each memory reading, so cyclic garbage waiting for Python's oldest generation is not
counted. ``heap_on_sigusr2``: SIGUSR2 appends the heap's figures to a file, which the bench asks for after each
reading: glibc's bytes in use and free (``mallinfo2``, all arenas), SQLite's bytes in use (``sqlite3_memory_used``,
page caches included), pymalloc's allocated blocks and the objects the garbage collector tracks; it tells live data
that grows from free memory the allocator keeps.
"""


def _diagnostic_env(work: Path, parts: list[str]) -> tuple[dict[str, str], Path | None]:
    """The environment that installs ``parts`` of `DIAGNOSTIC_SITE` in the server, and the collection marker."""
    if not parts:
        return {}, None
    site = work / "diagnostic"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text("\n\n".join(DIAGNOSTIC_SITE[part] for part in parts))
    marker = site / "collected.log"
    env = {
        "PYTHONPATH": str(site),
        "MEDIA_MCP_BENCH_COLLECTED": str(marker),
        "MEDIA_MCP_BENCH_HEAP": str(_heap_file(work)),
    }
    return env, marker if "collect_on_sigusr1" in parts else None


def _heap_file(work: Path) -> Path:
    return work / "diagnostic" / "heap.jsonl"


def run(
    sessions: int = 50,
    calls: int = 100,
    rounds: int = ROUNDS,
    *,
    seed: int = 0,
    catalog: int = CATALOG_FILES,
    slope_bound: float = MEMORY_SLOPE_BOUND_MIB_PER_ROUND,
    diagnostic: list[str] | None = None,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Spawn the server on a library of ``catalog`` files, seed it, soak it with a warm-up and ``rounds`` rounds of
    load; the figures as a JSON-able dict.

    ``slope_bound`` (MiB per round) bounds the VmRSS slope over the last half of the rounds (see `memory_slope`).
    ``diagnostic`` names parts of `DIAGNOSTIC_SITE` to install in the server (to tell bounded memory effects apart;
    see `MEMORY_SLOPE_BOUND_MIB_PER_ROUND`). ``work_dir`` (kept) holds the data directory and the server log; without it
    a temporary one is used and removed.
    """
    if sessions < 1 or calls < 2 or rounds < MIN_ROUNDS or not (catalog == 0 or catalog >= RARE_COUNT):
        raise ValueError(
            f"need sessions >= 1, calls >= 2 (a trash/restore pair), rounds >= {MIN_ROUNDS} (two in the last half), "
            f"and catalog 0 or >= {RARE_COUNT}"
        )
    diagnostic = list(diagnostic or [])
    if unknown := set(diagnostic) - set(DIAGNOSTIC_SITE):
        raise ValueError(f"unknown diagnostic parts {sorted(unknown)}; known: {sorted(DIAGNOSTIC_SITE)}")
    work = work_dir or Path(tempfile.mkdtemp(prefix="media-mcp-load-"))
    began = time.perf_counter()
    try:
        seeded = _seed_catalog(work / "data", catalog, seed)
        extra_env, collected = _diagnostic_env(work, diagnostic)
        with spawn(work, extra_env) as server:
            server.collected = collected
            server.heap = _heap_file(work) if "heap_on_sigusr2" in diagnostic else None
            try:
                report = anyio.run(_drive, server, sessions, calls, rounds, seed, slope_bound)
            except BaseException as exc:
                exc.add_note(f"server log tail: {server.log_tail()}")
                raise
        report["catalog"] = seeded
        report["diagnostic"] = diagnostic
        leftovers = [p.name for p in (work / "data").glob("library.sqlite3-*")]
        report["server"] = {
            "command": "media-mcp --transport http --host 127.0.0.1 --port <free>",
            "stopped_by": server.stop_signal,
            "exit_code": server.proc.returncode,
            "database_closed": not leftovers,  # SQLite removes -wal and -shm when its last connection closes
            "database_leftovers": leftovers,
        }
    finally:
        if work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    report["seconds"] = round(time.perf_counter() - began, 1)
    report["ok"] = bool(
        report["errors"] == 0
        and report["memory_slope"]["plateaued"]
        and report["consistency"]["ok"]
        and report["server"]["stopped_by"] == "SIGTERM"
        and report["server"]["exit_code"] == 0
        and report["server"]["database_closed"]
    )
    return report


def _stats_line(report: dict[str, Any]) -> str:
    memory = report["memory_slope"]
    return (
        f"{report['sessions']} sessions x {report['calls_per_session']} calls x {report['rounds_measured']} rounds: "
        f"{report['calls']} calls, {report['errors']} errors, p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms, "
        f"{report['throughput_calls_per_s']} calls/s; VmRSS {report['rss_mib']['per_round']} MiB; slope over rounds "
        f"{memory['window'][0]}-{memory['window'][-1]} {memory['slope_mib_per_round']} MiB/round "
        f"({memory['slope_kib_per_1k_calls']} KiB per 1,000 calls; bound {memory['bound_mib_per_round']} MiB/round)"
    )


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.rel_load", description="the load part, alone; JSON out")
    parser.add_argument("sessions", type=int, nargs="?", default=50)
    parser.add_argument("calls", type=int, nargs="?", default=100)
    parser.add_argument("rounds", type=int, nargs="?", default=ROUNDS)
    parser.add_argument("--catalog", type=int, default=CATALOG_FILES, help="files in the library beforehand")
    parser.add_argument(
        "--slope-bound",
        type=float,
        default=MEMORY_SLOPE_BOUND_MIB_PER_ROUND,
        help="bound on the last half's VmRSS slope, MiB per round",
    )
    parser.add_argument(
        "--diagnostic",
        action="append",
        choices=sorted(DIAGNOSTIC_SITE),
        default=[],
        help="install this diagnostic in the server (repeatable; see DIAGNOSTIC_SITE)",
    )
    args = parser.parse_args()
    figures = run(
        args.sessions,
        args.calls,
        args.rounds,
        catalog=args.catalog,
        slope_bound=args.slope_bound,
        diagnostic=args.diagnostic,
    )
    print(json.dumps(figures, indent=2))
    print(_stats_line(figures), file=sys.stderr)
