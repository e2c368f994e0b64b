"""The command line a person meets first, run as a subprocess: ``--help``, and the banner of a start in each transport.

``media-mcp --help`` shows the serve options themselves (they work with no command); the banner on stderr gives, over
stdio, the absolute command a client config needs, and over HTTP the URL and whether a token is needed, nothing of
client configs.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from media_mcp import __version__

START_TIMEOUT = 60.0
"""Bound on a start (the SDK import takes ~0.6 s on a quiet machine, much more on a busy one) and on an exit."""
SERVE_OPTIONS = ("--transport", "--host", "--port", "--stateless", "--allowed-host", "--read-only", "--backend")


def commands() -> list[list[str]]:
    found = [[sys.executable, "-m", "media_mcp"]]
    script = Path(sys.executable).with_name("media-mcp")
    if script.exists():
        found.append([str(script)])
    return found


def ids(command: list[str]) -> str:
    return "script" if len(command) == 1 else "python -m"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An isolated environment: own data dir and home, a free library port, no Wix."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "MEDIA_MCP_DATA_DIR": str(tmp_path / "data"),
        "MEDIA_MCP_LIBRARY_PORT": "0",
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "120",
    }


def run(command: list[str], env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )


# --- --help -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", commands(), ids=ids)
def test_help_shows_the_serve_options_and_the_commands(command: list[str], env: dict[str, str], tmp_path: Path) -> None:
    done = run(command, env, tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    top = done.stdout
    assert "serve options" in top
    for option in SERVE_OPTIONS:
        assert re.search(rf"^\s+{option}\b.*\S", top, re.MULTILINE), f"{option} is not explained:\n{top}"
    for command_name in ("serve", "library"):
        assert re.search(rf"^\s+{command_name}\s+\S", top, re.MULTILINE), top
    assert "media-mcp --transport http" in top  # an example of each way to run it

    serve = run(command, env, tmp_path, "serve", "--help")
    assert serve.returncode == 0 and serve.stdout.startswith("usage: media-mcp serve")
    assert all(option in serve.stdout for option in SERVE_OPTIONS)
    library = run(command, env, tmp_path, "library", "--help")
    assert library.returncode == 0 and "--data-dir" in library.stdout and "--transport" not in library.stdout
    assert run(command, env, tmp_path, "--version").stdout.strip() == f"media-mcp {__version__}"


# --- the banner over stdio ------------------------------------------------------------------------------------------


def config_of(banner: str) -> dict[str, object]:
    line = next(line for line in banner.splitlines() if "JSON config" in line)
    config: dict[str, object] = json.loads(line.split('"media": ', 1)[1])
    return config


@pytest.mark.parametrize("command", commands(), ids=ids)
def test_stdio_banner_gives_the_absolute_command_for_a_client(
    command: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    """Started as a person would, relative to where they stand; stdin closed, so it serves nothing and ends."""
    if len(command) == 1:  # the script, by a relative path from its own directory
        cwd, started, expected = Path(command[0]).parent, ["./media-mcp"], [command[0]]
    else:
        cwd, started, expected = tmp_path, command, [sys.executable, "-m", "media_mcp"]
    env["MEDIA_MCP_CONFIRM"] = "token"
    env["MEDIA_MCP_HTTP_TOKEN"] = "never-shown-7f3a"
    done = run(started, env, cwd, "--read-only")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    banner = done.stderr
    assert banner.startswith("media-mcp: serving MCP over stdio on the embedded media library")
    absolute = " ".join([*expected, "--read-only"])
    assert f"absolute command (a client has neither your shell's PATH nor its virtualenv): {absolute}\n" in banner
    assert f"claude mcp add media -- {absolute}\n" in banner
    config = config_of(banner)
    assert config["command"] == expected[0] and Path(expected[0]).is_absolute()
    assert config["args"] == [*expected[1:], "--read-only"]
    assert config["env"] == {name: "<value>" for name in sorted(env) if name.startswith("MEDIA_MCP_")}
    assert "MEDIA_MCP_HTTP_TOKEN" in banner and "never-shown-7f3a" not in banner  # names, never values
    assert "http://" not in banner and "Bearer" not in banner


# --- the banner over HTTP -------------------------------------------------------------------------------------------


class Started:
    """A server started in the background; its stderr read line by line on a thread, each wait bounded."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.lines.put(raw.decode(errors="replace"))
        self.lines.put(None)

    def banner(self) -> str:
        """Every line up to the one that says where clients connect."""
        deadline, seen = time.monotonic() + START_TIMEOUT, list[str]()
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, f"ended before its banner: {''.join(seen)}"
            seen.append(line)
            if "clients connect to" in line:
                return "".join(seen)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=START_TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=START_TIMEOUT)
            self.reader.join(timeout=START_TIMEOUT)  # it ends at the end of stderr, which the exit closed
            assert self.process.stderr is not None
            self.process.stderr.close()


@pytest.fixture
def start(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[list[str], dict[str, str]], Started]]:
    """``start(command, extra_env)``: a server in the background, stopped at the end of the test."""
    started: list[Started] = []

    def launch(command: list[str], extra: dict[str, str]) -> Started:
        started.append(Started(command, {**env, **extra}, tmp_path))
        return started[-1]

    yield launch
    for server in started:
        server.stop()


@pytest.mark.parametrize("token", [None, "s3cret-token-value"], ids=["loopback-no-token", "token"])
def test_http_banner_gives_the_url_and_the_token_rule_and_no_client_config(
    start: Callable[[list[str], dict[str, str]], Started], token: str | None
) -> None:
    extra = {"MEDIA_MCP_HTTP_TOKEN": token} if token else {}
    server = start([sys.executable, "-m", "media_mcp", "--transport", "http", "--port", "0"], extra)
    banner = server.banner()
    assert banner.startswith("media-mcp: serving MCP over streamable HTTP on 127.0.0.1:")
    found = re.search(r"clients connect to (http://127\.0\.0\.1:(\d+)/mcp);", banner)
    assert found, banner
    url, port = found.group(1), int(found.group(2))
    assert port != 0  # the port the system chose, not the 0 asked for
    if token:
        assert "every request must carry 'Authorization: Bearer <token>'" in banner and "MEDIA_MCP_HTTP_TOKEN" in banner
        assert token not in banner
    else:
        assert "no token is needed on this loopback bind" in banner
    for stdio_advice in ("claude mcp add", "JSON config", "absolute command", "stdout", '"env"'):
        assert stdio_advice not in banner
    with httpx.Client(timeout=10) as http:
        assert http.get(url.removesuffix("/mcp") + "/healthz").status_code == 200
        refused = http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert (refused.status_code == 401) == bool(token)
    assert server.stop() == 0


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the server's memory map from /proc (Linux)")
def test_http_transport_serves_its_connections_on_uvloop(start: Callable[[list[str], dict[str, str]], Started]) -> None:
    """asyncio's own socket transport takes 256 KiB for every read, which made the server's heap grow under many small
    requests (docs/reliability.md, the memory soak); uvicorn picks uvloop, a dependency, when it can import it."""
    server = start([sys.executable, "-m", "media_mcp", "--transport", "http", "--port", "0"], {})
    server.banner()
    maps = Path(f"/proc/{server.process.pid}/maps").read_text()
    assert "uvloop" in maps, "the HTTP transport runs on asyncio's own loop"
    assert server.stop() == 0
