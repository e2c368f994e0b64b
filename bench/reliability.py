"""Reliability and security in one table: faults, crashes, hostile input and load, run in that order.

Each part is a module of this package with a ``run`` function that returns its figures:

* faults (``bench.rel_faults``): mixed tool calls through the MCP server with a share of backend requests faulted
  (429 with Retry-After, 500/503, delays past the read timeout, dropped connections); the calls that survived
  (answered, or failed with a clear retryable error), and the writes lost or done twice;
* crashes (``bench.rel_crash``): the library SIGKILLed in the middle of uploads, a bulk trash and a restore, then
  restarted and checked (integrity, no partial file, uploads intact, resumable uploads resumed);
* hostile input (``bench.rel_hostile``): arguments generated from every tool's input schema, valid and invalid, and
  seven classes of named hostile input (check-then-open races, HTTP binds, upload types, the size cap, hidden text,
  search cost, small leaks); tried, rejected cleanly, crashes, leaks, secrets in the logs;
* load (``bench.rel_load``): a soak of concurrent MCP sessions over streamable HTTP against ``media-mcp --transport
  http``; errors, p50/p99, throughput, and whether resident memory plateaus (its slope over the last half of the
  rounds).

Every part runs in its own child process with a time limit, so a part that is missing, fails, hangs or takes the
interpreter down is reported in its row and the others still run. The figures go to ``bench/results/reliability.json``
(``--only`` updates that part and keeps the others); the table is printed on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HELP = "reliability and security: faults, crashes, hostile input and load, as one table"
DESCRIPTION = __doc__

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "reliability.json"
PARTS = ("faults", "crashes", "hostile", "load")
MODULES = {"faults": "bench.rel_faults", "crashes": "bench.rel_crash", "hostile": "bench.rel_hostile",
           "load": "bench.rel_load"}  # fmt: skip
LABELS = {"faults": "Faults injected", "crashes": "Crashes (SIGKILL)", "hostile": "Hostile inputs",
          "load": "Load (streamable HTTP)"}  # fmt: skip
EXIT_MISSING = 3
"""The child's exit status when the part's module (or its ``run``) does not exist."""


# --- options -------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--faults-calls", type=int, default=2000, help="tool calls under faults (default 2000)")
    parser.add_argument("--crashes", type=int, default=20, help="SIGKILLs of the library (default 20)")
    parser.add_argument("--hostile-examples", type=int, default=200, help="generated examples per tool (default 200)")
    parser.add_argument("--sessions", type=int, default=50, help="concurrent MCP sessions (default 50)")
    parser.add_argument("--calls", type=int, default=100, help="calls per session per round (default 100)")
    parser.add_argument(
        "--rounds", type=int, help="measured soak rounds after the warm-up (default: bench.rel_load.ROUNDS)"
    )
    parser.add_argument("--only", choices=PARTS, help="run one part only (the JSON keeps the others' last figures)")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice (default 1)")
    parser.add_argument(
        "--part-timeout",
        type=float,
        default=3600.0,
        help="seconds each part may take before it is stopped (default 3600: the default soak takes about 1200)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")


def _arguments(part: str, args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments of the part's ``run``."""
    if part == "faults":
        return [args.seed, args.faults_calls], {}
    if part == "crashes":
        return [args.crashes, args.seed], {}
    if part == "hostile":
        return [args.hostile_examples, args.seed], {}
    rounds = {} if args.rounds is None else {"rounds": args.rounds}  # the part's own default otherwise
    return [args.sessions, args.calls], {"seed": args.seed, **rounds}


# --- running a part in a child process -----------------------------------------------------------


def child(part: str, output: str, call: str) -> int:
    """In the child: import the part, run it, write ``{"figures": ...}`` or ``{"error": ...}`` to ``output``."""
    positional, keywords = json.loads(call)
    out = Path(output)
    try:
        module = importlib.import_module(MODULES[part])
    except Exception as exc:  # a part that exists but does not import is an error, not a missing part
        out.write_text(json.dumps({"error": f"cannot import {MODULES[part]}: {type(exc).__name__}: {exc}"[:1000]}))
        missing = isinstance(exc, ModuleNotFoundError) and exc.name == MODULES[part]
        return EXIT_MISSING if missing else 1
    run = getattr(module, "run", None)
    if run is None:
        out.write_text(json.dumps({"error": f"{MODULES[part]} has no run()"}))
        return EXIT_MISSING
    try:
        figures = run(*positional, **keywords)
    except BaseException as exc:
        detail = "".join(traceback.format_exception(exc))[-4000:]
        out.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:1000], "traceback": detail}))
        return 1
    out.write_text(json.dumps({"figures": figures}, default=str))
    return 0


@dataclass
class Outcome:
    part: str
    status: str
    """ok, failed (ran, a figure is not as it must be), error (raised), timeout, missing."""
    seconds: float
    arguments: list[Any]
    figures: dict[str, Any] | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "seconds": round(self.seconds, 1),
            "arguments": self.arguments,
            "measured_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "figures": self.figures,
            "error": self.error,
        }


def run_part(part: str, args: argparse.Namespace) -> Outcome:
    positional, keywords = _arguments(part, args)
    shown = [*positional, *(f"{k}={v}" for k, v in keywords.items())]
    print(f"reliability: {part} ({MODULES[part]}.run{tuple(shown)}) ...", file=sys.stderr, flush=True)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="media-mcp-reliability-") as tmp:
        output = Path(tmp) / "figures.json"
        code = "import sys; from bench import reliability; sys.exit(reliability.child(*sys.argv[1:]))"
        argv = [sys.executable, "-c", code, part, str(output), json.dumps([positional, keywords])]
        # its own process group: on timeout the part and any server it spawned are stopped together
        proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=sys.stderr, start_new_session=True)
        try:
            returncode = proc.wait(timeout=args.part_timeout)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            return Outcome(part, "timeout", time.perf_counter() - began, shown,
                           error=f"stopped after {args.part_timeout:.0f}s")  # fmt: skip
        seconds = time.perf_counter() - began
        try:
            answer: dict[str, Any] = json.loads(output.read_text())
        except (OSError, ValueError):
            answer = {"error": f"the part's process exited with {returncode} and wrote no figures"}
    if returncode == EXIT_MISSING:
        return Outcome(part, "missing", seconds, shown, error=answer.get("error"))
    figures = answer.get("figures")
    if returncode != 0 or not isinstance(figures, dict):
        return Outcome(part, "error", seconds, shown, error=str(answer.get("error") or f"exit status {returncode}"))
    try:
        status = "ok" if ROWS[part](figures).held else "failed"
    except Exception as exc:  # the figures have a shape this report does not know
        return Outcome(part, "error", seconds, shown, figures, f"unexpected figures: {type(exc).__name__}: {exc}")
    return Outcome(part, status, seconds, shown, figures)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the part's process group, SIGKILL it if it is still there 15 s later."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


# --- the table -----------------------------------------------------------------------------------


@dataclass
class Row:
    tried: str
    held: bool
    result: str
    failures: str


def _n(figures: dict[str, Any], key: str) -> int:
    value = figures.get(key, 0)
    return int(value) if isinstance(value, int | float) else 0


def faults_row(f: dict[str, Any]) -> Row:
    calls = _n(f, "calls")
    unexplained = _n(f, "unexplained")
    bad = {"lost": _n(f, "lost"), "written twice": _n(f, "duplicates"), "unexplained": unexplained,
           "partial leftovers": _n(f, "partial_leftovers")}  # fmt: skip
    kinds = f.get("faults_injected")
    injected = _n(f, "faults_total") if isinstance(kinds, dict) else _n(f, "faults_injected")
    mix = ", ".join(f"{k} {v}" for k, v in kinds.items()) if isinstance(kinds, dict) else ""
    tried = (
        f"{injected} faults ({mix}) in {_n(f, 'backend_requests')} backend requests under {calls} tool calls"
        if mix
        else f"{injected} faults in {_n(f, 'backend_requests')} backend requests under {calls} tool calls"
    )
    unknown, done = _n(f, "writes_outcome_unknown"), _n(f, "outcome_unknown_done")
    result = (
        f"{calls - unexplained} / {calls} calls survived: reads {_n(f, 'reads_ok')} ok + "
        f"{_n(f, 'reads_failed_cleanly')} clear retryable errors; writes {_n(f, 'writes_ok')} ok + "
        f"{_n(f, 'writes_failed_cleanly')} failed cleanly ({unknown} of them with the outcome unknown to the caller: "
        f"{done} found done once, {unknown - done} not done)"
    )
    held = bool(f.get("ok", True)) and calls > 0 and not any(bad.values())
    return Row(tried, held, result, _failures(bad))


CRASH_FAILURES = ("integrity_failures", "partial_visible", "uploads_lost", "half_state", "duplicates", "leftovers",
                  "not_resumed", "died_on_its_own")  # fmt: skip


def crashes_row(f: dict[str, Any]) -> Row:
    crashes, recovered = _n(f, "crashes"), _n(f, "recovered")
    bad = {key.replace("_", " "): _n(f, key) for key in CRASH_FAILURES}
    tried = f"{crashes} SIGKILLs at {len(f.get('kill_points') or {})} kill points"
    result = (
        f"{recovered} / {crashes} recovered; uploads {_n(f, 'uploads_intact')} / {_n(f, 'uploads_acked')} intact "
        f"(sha256), {_n(f, 'resumed_ok')} / {_n(f, 'tus_interrupted')} interrupted resumable uploads resumed "
        "byte-identical"
    )
    held = crashes > 0 and recovered == crashes and not any(bad.values())
    return Row(tried, held, result, _failures(bad))


HOSTILE_FAILURES = ("crashes", "hangs", "schema_bypasses", "secrets_in_logs", "forbidden_requests", "escapes",
                    "unconfirmed_trash", "unfenced")  # fmt: skip
HOSTILE_CLASSES = {
    "check_then_open": "check-then-open races", "http_binds": "HTTP binds", "upload_types": "upload types",
    "size_cap": "size cap", "hidden_text": "hidden text", "search_cost": "search cost", "small_leaks": "small leaks",
}  # fmt: skip
"""The seven classes of named hostile input (issue 11) the part runs besides the generated cases, as the row names
them; their figures are under ``classes`` (see `bench.rel_hostile.ClassTally`)."""
CLASS_FAILURES = ("crashes", "leaks", "stalls", "broken")


def hostile_row(f: dict[str, Any]) -> Row:
    tried = _n(f, "tried")
    bad = {key.replace("_", " "): _n(f, key) for key in HOSTILE_FAILURES}
    other = _n(f, "failed") - sum(bad.values())
    if other > 0:
        bad["other failures"] = other
    rejected, accepted, lenient = _n(f, "rejected_cleanly"), _n(f, "accepted_ok"), _n(f, "lenient_accepts")
    result = f"{rejected} rejected cleanly, {accepted} valid ones answered with a result"
    if lenient:
        result += f", {lenient} invalid ones that break no published bound accepted"
    detail = f"{tried} generated and named cases ({_n(f, 'valid_tried')} valid, {_n(f, 'invalid_tried')} invalid)"
    found = f.get("classes")
    classes: dict[str, Any] = found if isinstance(found, dict) else {}
    class_detail, class_result, class_bad = _hostile_classes(classes)
    held = tried > 0 and not any(bad.values()) and not any(class_bad.values())
    return Row(f"{detail}; {class_detail}", held, f"{result}; {class_result}", _failures({**bad, **class_bad}))


def _hostile_classes(classes: dict[str, Any]) -> tuple[str, str, dict[str, int]]:
    """The classes' part of the hostile row: what was tried, how it ended, and the failures (a class that is missing
    or tried nothing is one)."""
    ran = {key: classes[key] for key in HOSTILE_CLASSES if isinstance(classes.get(key), dict)}
    bad = {f"class {kind}": sum(_n(c, kind) for c in ran.values()) for kind in CLASS_FAILURES}
    bad["classes missing or empty"] = sum(1 for key in HOSTILE_CLASSES if _n(ran.get(key) or {}, "tried") == 0)
    total = sum(_n(c, "tried") for c in ran.values())
    kinds = sum(len(c.get("members") or {}) for c in ran.values())
    each = ", ".join(f"{HOSTILE_CLASSES[k]} {_n(c, 'tried')}" for k, c in ran.items())
    tried = f"7 classes of named hostile input: {total} cases of {kinds} kinds ({each})"
    ends = []
    for key, c in ran.items():
        text = f"{HOSTILE_CLASSES[key]} {_n(c, 'rejected_cleanly')} + {_n(c, 'defused')} / {_n(c, 'tried')}"
        slips = [f"{_n(c, k)} {k}" for k in CLASS_FAILURES if _n(c, k)]
        ends.append(text + (f" ({', '.join(slips)})" if slips else ""))
    result = "classes (rejected cleanly + accepted harmlessly / tried): " + "; ".join(ends)
    figures = (ran.get("search_cost") or {}).get("figures") or {}
    during, alone = figures.get("get_file_during_searches") or {}, figures.get("get_file_alone") or {}
    if during:
        result += (
            f"; get_file in another session during costly searches p50 {during.get('p50_ms')} ms, max "
            f"{during.get('max_ms')} ms ({alone.get('p50_ms')} ms alone)"
        )
    return tried, result, bad


def load_row(f: dict[str, Any]) -> Row:
    sessions, per, rounds = _n(f, "sessions"), _n(f, "calls_per_session"), _n(f, "rounds_measured")
    tried = f"soak: {sessions} sessions x {per} calls x {rounds} rounds = {_n(f, 'calls')} calls"
    catalog = _n(f.get("catalog") or {}, "files")
    if catalog:
        tried += f", on a library of {catalog:,} files"
    rss = f.get("rss_mib") or {}
    per_round = rss.get("per_round") or []
    memory = f.get("memory_slope") or {}
    window = memory.get("window") or ["?", "?"]
    result = (
        f"{_n(f, 'errors')} errors; p50 {f.get('p50_ms')} ms, p99 {f.get('p99_ms')} ms, "
        f"{f.get('throughput_calls_per_s')} calls/s; VmRSS {rss.get('after_warmup')} MiB after the warm-up, "
        f"{' / '.join(str(v) for v in per_round)} MiB after each round; slope over rounds {window[0]}-{window[-1]} "
        f"{memory.get('slope_mib_per_round')} MiB/round ({memory.get('slope_kib_per_1k_calls')} KiB per 1,000 "
        f"calls), bound {memory.get('bound_mib_per_round')} MiB/round; first half "
        f"{memory.get('first_half_slope_mib_per_round')} MiB/round"
    )
    consistency = f.get("consistency") or {}
    bad = {"errors": _n(f, "errors"), "inconsistent writes": len(consistency.get("problems") or []),
           "memory still growing": 0 if memory.get("plateaued") else 1}  # fmt: skip
    held = bool(f.get("ok")) and _n(f, "calls") > 0 and not any(bad.values())
    return Row(tried, held, result, _failures(bad))


def _failures(bad: dict[str, int]) -> str:
    nonzero = [f"{v} {k}" for k, v in bad.items() if v]
    return ", ".join(nonzero) if nonzero else "0 (" + ", ".join(f"{k}" for k in bad) + ": none)"


ROWS: dict[str, Callable[[dict[str, Any]], Row]] = {
    "faults": faults_row, "crashes": crashes_row, "hostile": hostile_row, "load": load_row,
}  # fmt: skip


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| Part | Tried | Held | Failures | Verdict |",
        "|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        label = LABELS[outcome.part]
        row = None
        if outcome.figures is not None and outcome.status in ("ok", "failed"):
            with contextlib.suppress(Exception):
                row = ROWS[outcome.part](outcome.figures)
        if row is not None:
            verdict = "held" if outcome.status == "ok" else "**FAILED**"
            cells = [label, row.tried, row.result, row.failures, f"{verdict} ({outcome.seconds:.0f} s)"]
        elif outcome.status == "missing":
            cells = [label, "not run", f"`{MODULES[outcome.part]}` is missing: {outcome.error}", "n/a", "**MISSING**"]
        else:
            what = "timed out" if outcome.status == "timeout" else "failed to run"
            cells = [label, "not completed", f"{what}: {outcome.error}", "n/a", f"**{outcome.status.upper()}**"]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _from_json(part: str, saved: dict[str, Any]) -> Outcome:
    return Outcome(part, str(saved.get("status")), float(saved.get("seconds") or 0), list(saved.get("arguments") or []),
                   saved.get("figures"), saved.get("error"))  # fmt: skip


# --- entry point ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    parts = [args.only] if args.only else list(PARTS)
    load_average = [round(v, 2) for v in os.getloadavg()]
    outcomes: list[Outcome] = []
    for part in parts:
        outcome = run_part(part, args)
        outcomes.append(outcome)
        print(f"reliability: {part}: {outcome.status} in {outcome.seconds:.0f}s", file=sys.stderr, flush=True)
    text = table(outcomes)
    previous: dict[str, Any] = {}
    if args.only and args.output.exists():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            previous = dict(json.loads(args.output.read_text())["parts"])
    merged = {**previous, **{o.part: o.to_json() for o in outcomes}}
    options = {k: v for k, v in vars(args).items() if k not in ("suite", "output", "only")}
    report = {
        "options": options,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": load_average,
        },  # fmt: skip
        "parts": merged,
        "table": table([_from_json(part, merged[part]) for part in PARTS if part in merged]),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(text)
    print(f"\n(figures in {args.output})", file=sys.stderr)
    return 0 if all(o.status == "ok" for o in outcomes) else 1
