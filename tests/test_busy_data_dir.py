"""A start that waits on the data directory's ``members.lock``, held by another process, says so and names it.

Run as a person or an assistant's host runs it: the command as a subprocess, the lock held by this test (as a
media-mcp process cleaning up after a crash holds it, exclusively).
"""

from __future__ import annotations

import fcntl
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tests.conftest import cli_environment

WAIT = 60.0
"""Bound on every wait below: start-up (SDK import, more without .pyc), the lock's wait and each answer."""
NOTICE_WITHIN = 2.0
"""The wait on the lock is said on stderr this soon (it is said after about a second)."""
HELD = "another media-mcp process on this data directory holds"


@contextmanager
def lock_held(data_dir: Path) -> Iterator[Path]:
    data_dir.mkdir(mode=0o700)
    path = data_dir / "members.lock"
    with path.open("a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield path


class Command:
    """``python -m media_mcp ...`` with its stderr read line by line as it comes."""

    def __init__(self, tmp_path: Path, data_dir: Path, *args: str, start_timeout: float) -> None:
        env = cli_environment(tmp_path, data_dir, MEDIA_MCP_LIBRARY_START_TIMEOUT_SECONDS=str(start_timeout),
                              PYTHONUNBUFFERED="1")  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "media_mcp", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        self.errors: queue.Queue[tuple[float, str]] = queue.Queue()
        self.said: list[str] = []
        self.out: queue.Queue[bytes] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self._stderr), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out.put), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[bytes] | None, put: Any) -> None:
        assert stream is not None
        for line in stream:
            put(line)

    def _stderr(self, line: bytes) -> None:
        self.errors.put((time.monotonic(), line.decode()))

    def next_error(self, containing: str) -> tuple[float, str]:
        """The next line on stderr that contains ``containing`` (and when it came); the others are kept in said."""
        deadline = time.monotonic() + WAIT
        while True:
            at, line = self.errors.get(timeout=max(0.0, deadline - time.monotonic()))
            self.said.append(line)
            if containing in line:
                return at, line

    def finish(self) -> str:
        """Everything said on stderr, once the process has ended (killed if it had not)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=WAIT)
        for reader in self._readers:
            reader.join(timeout=WAIT)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        while not self.errors.empty():
            self.said.append(self.errors.get_nowait()[1])
        return "".join(self.said)

    def request(self, ident: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        message = {"jsonrpc": "2.0", "id": ident, "method": method, "params": params}
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + WAIT
        while True:
            answer = json.loads(self.out.get(timeout=max(0.0, deadline - time.monotonic())))
            if answer.get("id") == ident:
                result: dict[str, Any] = answer["result"]
                return result


def test_a_library_start_says_which_lock_it_waits_for_and_goes_on_once_it_is_free(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    command: Command | None = None
    try:
        with lock_held(data_dir) as lock:
            command = Command(tmp_path, data_dir, "library", "--port", "0", start_timeout=WAIT)
            # the first thing said: the wait, on the lock, while the command neither gives up nor serves
            noticed, line = command.next_error("WARNING")
            assert str(lock) in line and HELD in line, line
            assert command.proc.poll() is None
        served, _ = command.next_error("serving the Wix Media REST API")
        command.proc.send_signal(signal.SIGTERM)
        assert command.proc.wait(timeout=WAIT) == 0
    finally:
        said = command.finish() if command is not None else ""
    assert said.count(str(lock)) == 1, said  # said once, not at every try
    assert served > noticed


def test_a_library_start_that_waits_too_long_fails_naming_the_lock(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    give_up = 3.0
    with lock_held(data_dir) as lock:
        command = Command(tmp_path, data_dir, "library", "--port", "0", start_timeout=give_up)
        try:
            noticed, warning = command.next_error(HELD)
            gave_up, last = command.next_error("media-mcp library: ")
            assert command.proc.wait(timeout=WAIT) == 2
        finally:
            said = command.finish()
    assert warning.startswith("WARNING ") and str(lock) in warning, said
    # said within NOTICE_WITHIN of starting to wait: so well before giving up
    assert gave_up - noticed > give_up - NOTICE_WITHIN, said
    assert last.startswith(f"media-mcp library: cannot use data directory {data_dir}: waited 3 s for {lock}"), said
    assert HELD in last and said.splitlines()[-1] == last.rstrip("\n"), said
    assert "Traceback" not in said, said


def test_a_tool_call_while_the_lock_is_held_too_long_names_it(tmp_path: Path) -> None:
    """Over stdio the server answers at once; the first tool call waits for the library and says why it failed."""
    data_dir = tmp_path / "data"
    with lock_held(data_dir) as lock:
        command = Command(tmp_path, data_dir, start_timeout=2)
        try:
            hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
            command.request(1, "initialize", hello)
            assert command.proc.stdin is not None
            command.proc.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
            command.proc.stdin.flush()
            answer = command.request(2, "tools/call", {"name": "search_files", "arguments": {}})
            _, warning = command.next_error(HELD)
        finally:
            said = command.finish()
    assert answer.get("isError") is True, answer
    text = json.dumps(answer)
    assert str(lock) in text and HELD in text and "did not start in time" not in text, text
    assert warning.startswith("WARNING ") and str(lock) in warning, said
