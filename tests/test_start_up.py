"""The command's start-up pauses Python's cycle collector and turns it back on once it serves, run as a subprocess.

`media_mcp.cli.main` is run the way the ``media-mcp`` script runs it, by a small wrapper that reports afterwards, on
stderr, whether the collector was on, how many objects start-up set aside (`gc.freeze`), and how many collections
ran while the server answered.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.conftest import cli_environment

WAIT = 60.0

WRAPPER = """
import gc, json, sys
collections = []
gc.callbacks.append(lambda phase, info: collections.append(info["generation"]) if phase == "start" else None)
if sys.argv[1] == "caller-paused":
    gc.disable()
from media_mcp.cli import main
code = main(sys.argv[2:])
sys.stderr.write("REPORT " + json.dumps({"code": code, "enabled": gc.isenabled(),
                                         "frozen": gc.get_freeze_count(), "collections": len(collections)}) + "\\n")
"""

HANDSHAKE = (
    {"jsonrpc": "2.0", "id": 1, "method": "initialize",
     "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "summarize_media", "arguments": {}}},
)  # fmt: skip


def run(
    tmp_path: Path, mode: str, *arguments: str, messages: tuple[dict[str, Any], ...] = (), **settings: str
) -> dict[str, Any]:
    """Run the wrapper, send ``messages``, and close stdin once every request among them is answered."""
    env = cli_environment(tmp_path, tmp_path / "data", **settings)
    with subprocess.Popen(
        [sys.executable, "-c", WRAPPER, mode, *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        out, lines = proc.stdout, queue.Queue[bytes]()

        def read() -> None:
            for line in out:
                lines.put(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            proc.stdin.write(b"".join(json.dumps(message).encode() + b"\n" for message in messages))
            proc.stdin.flush()
            waiting = {message["id"] for message in messages if "id" in message}
            answered: set[int] = set()
            while waiting - answered:
                message = json.loads(lines.get(timeout=WAIT))
                if "result" in message:
                    answered.add(message["id"])
            proc.stdin.close()
            stderr = proc.stderr.read().decode()
            proc.wait(timeout=WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
        reader.join(timeout=WAIT)
    reports = [line for line in stderr.splitlines() if line.startswith("REPORT ")]
    assert len(reports) == 1, stderr
    report: dict[str, Any] = json.loads(reports[0].removeprefix("REPORT "))
    report["answered"] = answered
    return report


def test_a_served_session_runs_with_the_collector_on_and_start_up_set_aside(tmp_path: Path) -> None:
    report = run(tmp_path, "default", messages=HANDSHAKE)
    assert report["code"] == 0
    assert report["answered"] == {1, 2}
    assert report["enabled"] is True
    assert report["frozen"] > 10_000  # the SDK, pydantic and the tools' schemas: far more than this
    assert report["collections"] > 0  # the collector ran while the server answered


def test_a_start_that_fails_leaves_the_collector_on_and_sets_nothing_aside(tmp_path: Path) -> None:
    report = run(tmp_path, "default", MEDIA_MCP_CONFIRM="sometimes")
    assert report["code"] == 2
    assert report["enabled"] is True
    assert report["frozen"] == 0


def test_a_caller_that_keeps_the_collector_off_finds_it_off(tmp_path: Path) -> None:
    report = run(tmp_path, "caller-paused", messages=HANDSHAKE)
    assert report["code"] == 0
    assert report["answered"] == {1, 2}
    assert report["enabled"] is False
    assert report["frozen"] == 0
    assert report["collections"] == 0
