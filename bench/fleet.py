"""A fleet on one Wix site: replicas sharing Wix's rate limit through Redis, under agents' load (issue 15).

The rig of the fleet tests (`tests.fleet`), at the real window: Debian's ``redis-server`` on a loopback port;
``--replicas`` ``media-mcp --transport http --stateless`` processes, each with its own data directory, sharing Redis
and a confirm secret, limited to ``--limit`` Wix calls per ``--window`` seconds across the fleet
(``MEDIA_MCP_FLEET_SIZE`` = the replica count); and a recording fake of Wix (`tests.fleet.fakewix`: the embedded
library behind a counting proxy in a process of its own) that answers 429, as Wix does, to any request past
``--wix-limit`` in a trailing window. Before the run the library is seeded straight (not through the proxy, so not
counted) with ``--folders`` folders of small PNGs, ``--files`` in all.

Then ``--sessions`` MCP sessions (the SDK's client over streamable HTTP, session i on replica i mod replicas, as a
sticky load balancer would spread them) each act like an agent for ``--seconds``: a think time drawn from
[``--think-min``, ``--think-max``] seconds, then one call, drawn from a mix of ``search_files`` (40%), ``get_file``
(30%), ``generate_download_url`` (20%) and ``get_folder`` (10%), and so on; sessions start spread over the first
think time. A call started before the end finishes. Sessions wait for each call's answer, so when the agents ask for
more than the limit allows, calls queue in the replicas' limiter: latency, not 429s, is what a full limit costs.

Reported: requests the fake Wix saw in any trailing window (the most; the configured limit and Wix's must hold),
the 429s it sent, the errors agents saw (and those that name a rate limit, the 429s surfaced: goal 0), calls
completed, latency p50/p90/p99 overall and by tool, and Wix requests per call. Table on stdout, JSON in
``bench/results/fleet.json``, progress on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from bench import results_file
from bench.mcp import PNG_16x8
from bench.media import Check

HELP = "a fleet of replicas sharing Wix's rate limit through Redis: 50 agent sessions, 2 minutes, a fake Wix at 200/min"
DESCRIPTION = __doc__

RESULTS = Path(__file__).resolve().parent / "results" / "fleet.json"
CALL_TIMEOUT = 300.0
"""Longest one tool call may take (queueing for the rate limit included) before it counts as an error."""
MIX = {"search_files": 40, "get_file": 30, "generate_download_url": 20, "get_folder": 10}
RATE_ERROR = re.compile(r"429|rate[- ]limit|too many requests|RESOURCE_EXHAUSTED", re.IGNORECASE)
"""A tool error that tells the agent it was rate-limited: a 429 that reached the agent."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replicas", type=int, default=3, help="media-mcp replicas (default 3)")
    parser.add_argument("--sessions", type=int, default=50, help="concurrent MCP sessions (default 50)")
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the sessions run (default 120)")
    parser.add_argument("--limit", type=int, default=190, help="the fleet's Wix calls per window (default 190)")
    parser.add_argument("--window", type=float, default=60.0, help="the window in seconds, fleet's and Wix's (60)")
    parser.add_argument("--wix-limit", type=int, default=200, help="requests the fake Wix allows per window (200)")
    parser.add_argument("--think-min", type=float, default=2.0, help="shortest think time between calls (2 s)")
    parser.add_argument("--think-max", type=float, default=8.0, help="longest think time between calls (8 s)")
    parser.add_argument("--folders", type=int, default=6, help="folders seeded (default 6)")
    parser.add_argument("--files", type=int, default=60, help="files seeded, spread over the folders (default 60)")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice (default 1)")
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()), help="where the run's directories go"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, data) for inspection")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")


# --- the workload --------------------------------------------------------------------------------


@dataclass
class Seed:
    folders: list[str]
    files: list[str]


@dataclass
class Call:
    tool: str
    session: int
    started: float
    """Seconds since the sessions started."""
    seconds: float
    error: str | None = None

    @property
    def rate_limited(self) -> bool:
        return self.error is not None and RATE_ERROR.search(self.error) is not None


def _arguments(tool: str, seed: Seed, rng: random.Random) -> dict[str, Any]:
    if tool == "search_files":
        return rng.choice([
            {"folder_id": rng.choice(seed.folders), "limit": 10},
            {"query": "shot", "limit": 10},
            {"media_types": ["IMAGE"], "limit": 5, "sort_by": "name"},
        ])  # fmt: skip
    if tool == "get_file":
        if rng.random() < 0.3:
            return {"file_ids": rng.sample(seed.files, min(3, len(seed.files)))}
        return {"file_id": rng.choice(seed.files)}
    if tool == "generate_download_url":
        return {"file_id": rng.choice(seed.files), "expiration_minutes": 5}
    if tool == "get_folder":
        return {"folder_id": rng.choice(seed.folders)}
    raise ValueError(tool)


def _error_of(result: Any) -> str | None:
    if result.is_error:
        return " ".join(getattr(block, "text", "") for block in result.content)[:400] or "tool error"
    if result.structured_content is None:
        return "no structured content"
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _describe(exc.exceptions[0])
    return f"{type(exc).__name__}: {exc}"[:400]


async def _session(index: int, url: str, seed: Seed, args: argparse.Namespace, began: float, out: list[Call]) -> None:
    from mcp import Client

    rng = random.Random(args.seed * 100_003 + index)
    end = began + args.seconds
    await anyio.sleep(rng.uniform(0, args.think_max))  # agents do not all arrive at once
    try:
        async with Client(url, read_timeout_seconds=CALL_TIMEOUT) as client:
            while time.monotonic() < end:
                tool = rng.choices(list(MIX), weights=list(MIX.values()))[0]
                arguments = _arguments(tool, seed, rng)
                start = time.monotonic()
                error: str | None
                try:
                    with anyio.fail_after(CALL_TIMEOUT):
                        error = _error_of(await client.call_tool(tool, arguments))
                except TimeoutError:
                    error = f"timeout after {CALL_TIMEOUT:.0f}s"
                except Exception as exc:
                    error = _describe(exc)
                out.append(Call(tool, index, start - began, time.monotonic() - start, error))
                await anyio.sleep(min(rng.uniform(args.think_min, args.think_max), max(0.0, end - time.monotonic())))
    except Exception as exc:
        out.append(Call("(session)", index, time.monotonic() - began, 0.0, f"session failed: {_describe(exc)}"))


async def _drive(urls: list[str], seed: Seed, args: argparse.Namespace) -> tuple[list[Call], float]:
    out: list[Call] = []
    began = time.monotonic()
    async with anyio.create_task_group() as tg:
        for i in range(args.sessions):
            tg.start_soon(_session, i, urls[i % len(urls)], seed, args, began, out)
    return out, time.monotonic() - began


# --- figures -------------------------------------------------------------------------------------


@dataclass
class Latency:
    calls: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        if not seconds:
            return cls(0, 0.0, 0.0, 0.0, 0.0)
        ms = sorted(s * 1000 for s in seconds)
        cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
        return cls(len(ms), round(cuts[49], 1), round(cuts[89], 1), round(cuts[98], 1), round(ms[-1], 1))


@dataclass
class Wix:
    requests: int
    max_in_window: int
    """The most requests the fake Wix saw in any trailing window of the configured length."""
    closest_over_limit_seconds: float | None
    """The shortest time in which one request more than the fleet's limit arrived (>= the window: limit held)."""
    max_in_second: int
    """The most in any trailing second: how bursty the fleet's window lets the traffic be."""
    per_window: list[int]
    """Requests in each consecutive window from the start of the sessions (the last one may be partial)."""
    rate_limited_sent: int
    """429s the fake answered."""
    upstream_failures: int
    requests_per_call: float
    routes: dict[str, int]


@dataclass
class Agents:
    calls: int
    ok: int
    errors: int
    rate_limited_surfaced: int
    """Tool errors that name a rate limit: 429s that reached an agent."""
    calls_per_minute: float
    latency: Latency
    by_tool: dict[str, Latency]
    error_samples: list[str] = field(default_factory=list)


def _figures(calls: list[Call], rate: Any, args: argparse.Namespace, seconds: float) -> tuple[Wix, Agents]:
    stamps: list[float] = rate.stamps
    origin = stamps[0] if stamps else 0.0
    buckets = Counter(int((s - origin) // args.window) for s in stamps)
    real = [c for c in calls if c.tool != "(session)"]
    ok = [c for c in real if c.error is None]
    wix = Wix(
        requests=rate.count,
        max_in_window=rate.max_in_window(args.window),
        closest_over_limit_seconds=(round(span, 3) if (span := rate.tightest_span(args.limit)) is not None else None),
        max_in_second=rate.max_in_window(1.0),
        per_window=[buckets.get(i, 0) for i in range(max(buckets, default=-1) + 1)],
        rate_limited_sent=rate.rate_limited,
        upstream_failures=rate.failures,
        requests_per_call=round(rate.count / len(real), 2) if real else 0.0,
        routes=dict(rate.routes.most_common()),
    )
    errors = [c for c in calls if c.error is not None]
    agents = Agents(
        calls=len(real),
        ok=len(ok),
        errors=len(errors),
        rate_limited_surfaced=sum(c.rate_limited for c in errors),
        calls_per_minute=round(len(real) / seconds * 60, 1) if seconds else 0.0,
        latency=Latency.of([c.seconds for c in ok]),
        by_tool={tool: Latency.of([c.seconds for c in ok if c.tool == tool]) for tool in MIX},
        error_samples=sorted({f"{c.tool}: {c.error}" for c in errors})[:10],
    )
    return wix, agents


def _checks(wix: Wix, agents: Agents, args: argparse.Namespace) -> list[Check]:
    return [
        Check(f"most Wix requests in any {args.window:g} s window", wix.max_in_window,
              f"<= {args.limit} (the fleet's limit)", wix.max_in_window <= args.limit),
        Check("429s the fake Wix sent", wix.rate_limited_sent, "0", wix.rate_limited_sent == 0),
        Check("429s surfaced to agents", agents.rate_limited_surfaced, "0", agents.rate_limited_surfaced == 0),
        Check("failed calls", agents.errors, "0", agents.errors == 0),
    ]  # fmt: skip


def _report(wix: Wix, agents: Agents, checks: list[Check], args: argparse.Namespace, seconds: float) -> str:
    out = [
        f"## Fleet: {args.replicas} replicas, {args.sessions} sessions for {seconds:.0f} s, "
        f"{args.limit} Wix calls per {args.window:g} s across the fleet, a fake Wix enforcing {args.wix_limit}\n",
        "| figure | value |",
        "|---|---:|",
        f"| Wix requests (fake Wix saw) | {wix.requests:,} |",
        f"| most in any {args.window:g} s window | {wix.max_in_window} |",
        f"| per consecutive {args.window:g} s window | {', '.join(map(str, wix.per_window))} |",
        f"| most in any second | {wix.max_in_second} |",
        f"| 429s the fake Wix sent | {wix.rate_limited_sent} |",
        f"| 429s surfaced to agents | {agents.rate_limited_surfaced} |",
        f"| calls completed (ok / all) | {agents.ok:,} / {agents.calls:,} |",
        f"| calls per minute | {agents.calls_per_minute} |",
        f"| Wix requests per call | {wix.requests_per_call} |",
        f"| latency p50 / p90 / p99 / max (ms) | {agents.latency.p50_ms:,.0f} / {agents.latency.p90_ms:,.0f} / "
        f"{agents.latency.p99_ms:,.0f} / {agents.latency.max_ms:,.0f} |",
        "\n| tool | calls | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for tool, lat in agents.by_tool.items():
        out.append(
            f"| {tool} | {lat.calls} | {lat.p50_ms:,.0f} | {lat.p90_ms:,.0f} | {lat.p99_ms:,.0f} | {lat.max_ms:,.0f} |"
        )
    out.append("\n| check | value | target | result |\n|---|---:|---|---|")
    out.extend(f"| {c.name} | {c.value} | {c.target} | {'PASS' if c.passed else 'FAIL'} |" for c in checks)
    if agents.error_samples:
        out.append("\nerrors (samples):")
        out.extend(f"  {sample}" for sample in agents.error_samples)
    return "\n".join(out)


def _environment() -> dict[str, Any]:
    return results_file.environment("mcp", "redis")


# --- entry point ---------------------------------------------------------------------------------


def _seed(library: Any, folders: int, files: int) -> Seed:
    folder_ids = [library.create_folder(f"shoot-{i:02d}") for i in range(max(1, folders))]
    file_ids = [
        library.upload(f"shot-{i:03d}.png", PNG_16x8, "image/png", folder_ids[i % len(folder_ids)])
        for i in range(max(1, files))
    ]
    return Seed(folder_ids, file_ids)


def bench(work: Path, args: argparse.Namespace, redis_binary: str) -> tuple[list[Call], Any, float]:
    from tests.fleet.fakewix import FakeWix
    from tests.fleet.processes import FleetSettings, RedisServer, start_fleet, stop_fleet

    redis = RedisServer(work / "redis", redis_binary)
    redis.work.mkdir(parents=True, exist_ok=True)
    redis.start()
    try:
        with FakeWix(work / "wix", limit=args.wix_limit, window=args.window) as wix:
            print(f"fleet: seeding {args.folders} folders, {args.files} files", file=sys.stderr, flush=True)
            seed = _seed(wix.library, args.folders, args.files)
            settings = FleetSettings(replicas=args.replicas, limit=args.limit, window=args.window)
            replicas = start_fleet(work / "fleet", settings, wix.wix_environment(), redis.url)
            try:
                wix.reset()
                print(f"fleet: {args.sessions} sessions on {args.replicas} replicas for {args.seconds:g}s",
                      file=sys.stderr, flush=True)  # fmt: skip
                calls, seconds = anyio.run(_drive, [r.mcp_url for r in replicas], seed, args)
                rate = wix.record()
            finally:
                stop_fleet(replicas)
    finally:
        redis.stop()
    return calls, rate, seconds


def run(args: argparse.Namespace) -> int:
    from tests.fleet.processes import REDIS_SETUP, redis_binary

    bad = args.replicas < 1 or args.sessions < 1 or args.seconds <= 0 or args.limit < 1 or args.wix_limit < 1
    if bad or args.window <= 0 or not 0 <= args.think_min <= args.think_max:
        print("--replicas, --sessions, --seconds, --limit, --wix-limit and --window must be positive, and "
              "0 <= --think-min <= --think-max", file=sys.stderr)  # fmt: skip
        return 2
    binary = redis_binary()
    if binary is None:
        print(f"redis-server is not installed: {REDIS_SETUP}", file=sys.stderr)
        return 2
    args.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="media-mcp-bench-fleet-", dir=args.work_dir))
    began = time.time()
    env = _environment()
    try:
        calls, rate, seconds = bench(work, args, binary)
    finally:
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(work)
    wix, agents = _figures(calls, rate, args, seconds)
    checks = _checks(wix, agents, args)
    env["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    document = results_file.write(
        args, "fleet", began, env, {"run_seconds": round(seconds, 1), "wix": wix, "agents": agents}, checks
    )
    print(_report(wix, agents, checks, args, seconds))
    print(f"\nresults written to {args.output} ({document['duration_seconds']:.0f}s)")
    return 0 if document["all_passed"] else 1
