"""Stopping ``media-mcp`` over stdio as a host does (stdin closed, or SIGTERM) with an import in flight.

Either way the process closes its library cleanly, fast enough for the 2 s the MCP SDK's client gives before
SIGTERM, and the import it was running reads FAILED from a sibling process that shares the data directory.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from media_mcp.settings import LibrarySettings
from tests.conftest import Api, cli_environment

pytestmark = pytest.mark.anyio

WAIT = 60.0
"""Bound on every wait: start-up (SDK import, more without .pyc) and each answer."""


@pytest.fixture
def stalled_source() -> Iterator[tuple[str, threading.Event]]:
    """An HTTP source that sends headers and a few bytes, then nothing until the test ends; set when asked."""
    asked = threading.Event()
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"\x89PNG\r\n\x1a\n")
            self.wfile.flush()
            asked.set()
            release.wait(WAIT)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/slow.png", asked
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(WAIT)


class Stdio:
    def __init__(self, tmp_path: Path, data_dir: Path, stderr: Any) -> None:
        env = cli_environment(tmp_path, data_dir, MEDIA_MCP_LIBRARY_ALLOW_PRIVATE_IMPORTS="true", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "media_mcp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=tmp_path,
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def request(self, ident: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": ident, "method": method, "params": params}).encode())
        self.proc.stdin.write(b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + WAIT
        while True:
            message = json.loads(self.lines.get(timeout=max(0.0, deadline - time.monotonic())))
            if message.get("id") == ident:
                result: dict[str, Any] = message["result"]
                return result

    def notify(self, method: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method}).encode() + b"\n")
        self.proc.stdin.flush()

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
        self.reader.join(timeout=WAIT)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.mark.parametrize("stop", ["stdin closed", "SIGTERM"])
async def test_a_stop_closes_cleanly_in_time_and_fails_the_import_it_ran(
    tmp_path: Path, stalled_source: tuple[str, threading.Event], stop: str
) -> None:
    url, asked = stalled_source
    data_dir = tmp_path / "data"
    settings = LibrarySettings(data_dir=data_dir)
    with Library.open(settings) as sibling, (tmp_path / "stderr.txt").open("wb") as stderr:
        server = Stdio(tmp_path, data_dir, stderr)
        try:
            server.request(
                1,
                "initialize",
                {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
            )
            server.notify("notifications/initialized")
            imported = server.request(2, "tools/call", {"name": "import_file", "arguments": {"url": url}})
            assert not imported.get("isError"), imported
            file_id = imported["structuredContent"]["file"]["id"]
            assert asked.wait(WAIT), "the import never reached its source"

            if stop == "SIGTERM":
                server.proc.send_signal(signal.SIGTERM)
            else:
                assert server.proc.stdin is not None
                server.proc.stdin.close()
            status = server.proc.wait(timeout=WAIT)  # how long it takes is a benchmark's to say, not a test's
        finally:
            server.end()
        assert status == 0
        logged = (tmp_path / "stderr.txt").read_text()
        assert "Traceback" not in logged and "could not mark" not in logged, logged
        # it closed its library: its member lock is gone, only the sibling's is left
        assert list(sibling.data.members.iterdir()) == [sibling.data.members / f"{sibling.member}.lock"]

        transport = httpx.ASGITransport(app=create_app(sibling))
        async with httpx.AsyncClient(transport=transport, base_url="http://library.test") as http:
            got = await Api(http, sibling, "asgi").ok("GET", "/files/get-file-by-id", params={"fileId": file_id})
        assert got["file"]["operationStatus"] == "FAILED"
        assert got["file"]["failureReason"] == "the library stopped before the import finished"
