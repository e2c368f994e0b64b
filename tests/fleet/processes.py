"""Child processes of a fleet rig: ``redis-server`` and ``media-mcp --transport http --stateless`` replicas.

Every child writes its output into a log file through a thread of its own, which also lets the rig wait for a line
(redis's "Ready to accept connections", the replica's "clients connect to ..." banner) with a bounded wait and no
polling sleeps. Everything listens on 127.0.0.1 only, addressed by IP literal (no DNS).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from tests.setup_checks import setup_missing

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
"""Longest a child may take to say it is ready."""
STOP_TIMEOUT = 15.0
"""Longest a child may take to exit after SIGTERM before it is killed."""
REDIS_SETUP = "apt-get install redis-server"
REDIS_READY = re.compile(r"Ready to accept connections")
REDIS_PORT_TAKEN = re.compile(r"Address already in use|Could not create server TCP listening socket")
REPLICA_READY = re.compile(r"clients connect to (http://127\.0\.0\.1:\d+)/mcp")


def redis_binary() -> str | None:
    """Debian's ``redis-server`` on PATH, if installed."""
    return shutil.which("redis-server")


def redis_or_skip() -> str:
    """``redis-server``, or a skip naming the command that installs it (a failure under ``CI=true``)."""
    binary = redis_binary()
    if binary is None:
        setup_missing(f"redis-server is not installed (on PATH): {REDIS_SETUP}")
    return binary


def free_port() -> int:
    """A port nothing listens on right now (another program may take it before we do: callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def media_mcp_command() -> list[str]:
    """``media-mcp`` beside this interpreter (``python -m media_mcp`` if the script is not there)."""
    script = Path(sys.executable).parent / "media-mcp"
    return [str(script)] if script.exists() else [sys.executable, "-m", "media_mcp"]


def clean_environment(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``MEDIA_MCP_*`` or ``WIX_*`` setting, with its own HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIA_MCP_", "WIX_"))}
    home.mkdir(parents=True, exist_ok=True)
    env.update({"HOME": str(home), "PYTHONUNBUFFERED": "1", **(extra or {})})
    return env


class ChildExited(RuntimeError):
    """The child exited before it said what was waited for."""


class Child:
    """A child process whose output (stdout and stderr together) a thread drains into ``log``, line by line."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log: Path, cwd: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log = log
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._lines: list[str] = []
        self._eof = False
        self._changed = threading.Condition()
        self._drain: threading.Thread | None = None

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is already running"
        with self._changed:
            self._lines, self._eof = [], False
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=self.env, cwd=self.cwd,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self._drain = threading.Thread(
            target=self._read, args=(self.proc.stdout,), name=f"drain-{self.name}", daemon=True
        )
        self._drain.start()

    def _read(self, stream: IO[bytes]) -> None:
        with self.log.open("ab") as out:
            for raw in iter(stream.readline, b""):
                out.write(raw)
                out.flush()
                with self._changed:
                    self._lines.append(raw.decode(errors="replace"))
                    self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def wait_for(self, pattern: re.Pattern[str], timeout: float = START_TIMEOUT) -> re.Match[str]:
        """The first line of this run that matches ``pattern``, waiting at most ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        checked = 0
        with self._changed:
            while True:
                for line in self._lines[checked:]:
                    if found := pattern.search(line):
                        return found
                checked = len(self._lines)
                if self._eof:
                    raise ChildExited(f"{self.name} ended its output before {pattern.pattern!r}: {self.log_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name} did not say {pattern.pattern!r} within {timeout:g}s")
                self._changed.wait(left)

    def output(self) -> str:
        with self._changed:
            return "".join(self._lines)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signum)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; its exit status."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a paused child cannot act on SIGTERM
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._drain is not None:
            self._drain.join(timeout)
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode

    def log_tail(self, chars: int = 3000) -> str:
        return self.output()[-chars:] or "(no output)"


class RedisServer:
    """Debian's ``redis-server`` on 127.0.0.1 at a free port, without persistence, in its own directory.

    `stop` and `restart` (on the same port) make an outage; `pause` and `resume` (SIGSTOP, SIGCONT) make a Redis
    that accepts connections and never answers.
    """

    def __init__(self, work: Path, binary: str) -> None:
        self.work = work
        self.binary = binary
        self.port: int | None = None
        self._child: Child | None = None
        self.paused = False

    @property
    def url(self) -> str:
        assert self.port is not None
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        """Start on a free port (the first time) or on the port it had; returns once Redis accepts connections."""
        tries = 3 if self.port is None else 1
        for attempt in range(tries):
            port = self.port if self.port is not None else free_port()
            argv = [
                self.binary, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no",
                "--dir", str(self.work), "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "notice",
            ]  # fmt: skip
            child = Child(
                "redis-server", argv, clean_environment(self.work / "home"), self.work / "redis.log", self.work
            )
            child.start()
            try:
                child.wait_for(REDIS_READY)
            except ChildExited:
                child.stop()
                if attempt + 1 < tries and REDIS_PORT_TAKEN.search(child.output()):
                    continue  # another program took the free port in between: another one
                raise
            except BaseException:
                child.stop()
                raise
            self.port, self._child, self.paused = port, child, False
            return

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop()
        self.paused = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        assert self._child is not None and self._child.running
        self._child.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self._child is not None
        self._child.signal(signal.SIGCONT)
        self.paused = False

    def log_tail(self) -> str:
        return self._child.log_tail() if self._child is not None else "(not started)"


@dataclass
class Replica:
    """One ``media-mcp --transport http --stateless`` process, on a port the system chose."""

    index: int
    child: Child
    url: str = ""
    """The server's base URL (``http://127.0.0.1:<port>``): MCP at ``/mcp``."""

    @classmethod
    def launch(cls, index: int, work: Path, env: Mapping[str, str]) -> Replica:
        """Start the process; `wait_ready` waits for it."""
        argv = [*media_mcp_command(), "--transport", "http", "--stateless", "--host", HOST, "--port", "0"]
        child = Child(f"replica-{index}", argv, env, work / "server.log", work)
        child.start()
        return cls(index, child)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Its banner, then ``GET /healthz`` answering 200, within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        self.url = self.child.wait_for(REPLICA_READY, timeout).group(1)
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if http.get(f"{self.url}/healthz").status_code == 200:
                        return
                if not self.child.running:
                    raise ChildExited(f"replica {self.index} exited: {self.child.log_tail()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replica {self.index} did not answer /healthz within {timeout:g}s")
                assert self.child.proc is not None
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.child.proc.wait(0.05)  # a bounded pause that notices an exit at once

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"

    def stop(self) -> int | None:
        return self.child.stop()


@dataclass(frozen=True)
class FleetSettings:
    """What every replica of the fleet is configured with (the settings that must match across replicas)."""

    replicas: int = 3
    limit: int = 12
    """``MEDIA_MCP_WIX_RATE_LIMIT_PER_MINUTE``: calls per window across the fleet."""
    window: float = 2.0
    """``MEDIA_MCP_WIX_RATE_WINDOW_SECONDS``."""
    confirm: str = "token"
    secret: str = "fleet-shared-secret-for-tests-0123456789"
    redis_timeout: float = 0.5


def replica_environment(
    work: Path, settings: FleetSettings, wix: Mapping[str, str], redis_url: str | None
) -> dict[str, str]:
    """The environment of one replica: the fleet's shared settings, the fake Wix, its own data directory."""
    shared = {
        "MEDIA_MCP_BACKEND": "wix",
        "MEDIA_MCP_DATA_DIR": str(work / "data"),
        "MEDIA_MCP_CONFIRM": settings.confirm,
        "MEDIA_MCP_CONFIRM_SECRET": settings.secret,
        "MEDIA_MCP_FLEET_SIZE": str(settings.replicas),
        "MEDIA_MCP_WIX_RATE_LIMIT_PER_MINUTE": str(settings.limit),
        "MEDIA_MCP_WIX_RATE_WINDOW_SECONDS": f"{settings.window:g}",
        "MEDIA_MCP_REDIS_TIMEOUT_SECONDS": f"{settings.redis_timeout:g}",
        **wix,
    }
    if redis_url is not None:
        shared["MEDIA_MCP_REDIS_URL"] = redis_url
    return clean_environment(work / "home", shared)


def start_fleet(work: Path, settings: FleetSettings, wix: Mapping[str, str], redis_url: str | None) -> list[Replica]:
    """All replicas started at once, then each waited for; on a failure the started ones are stopped."""
    replicas: list[Replica] = []
    try:
        for i in range(settings.replicas):
            home = work / f"replica-{i}"
            home.mkdir(parents=True, exist_ok=True)
            replicas.append(Replica.launch(i, home, replica_environment(home, settings, wix, redis_url)))
        for replica in replicas:
            replica.wait_ready()
    except BaseException:
        stop_fleet(replicas)
        raise
    return replicas


def stop_fleet(replicas: list[Replica]) -> None:
    for replica in replicas:
        replica.child.signal(signal.SIGTERM)  # all at once, then each waited for
    for replica in replicas:
        replica.stop()
