"""The embedded library shared by several ``media-mcp`` processes on one data directory, over stdio.

Two processes on one data directory and one library port work at once; when the one serving the port exits, the
other takes it over and the links minted before still download. A program that holds the port without proving it
serves the directory gets no API key, no bytes, and no link points at it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent

from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from media_mcp.settings import LibrarySettings
from tests.conftest import Api, PNG_16x8

pytestmark = pytest.mark.anyio

SESSION_TIMEOUT = 120.0
"""Bound on a whole test: two servers start (SDK import ~0.6 s each, more without .pyc) and make every call."""
NOTES = b"written by the second process\n"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def upload_dir(tmp_path: Path) -> Path:
    root = tmp_path / "uploads"
    root.mkdir()
    (root / "cat.png").write_bytes(PNG_16x8)
    (root / "notes.txt").write_bytes(NOTES)
    return root


def server(tmp_path: Path, upload_dir: Path, port: int) -> StdioServerParameters:
    """``media-mcp`` over stdio on the shared data directory and library port, with nothing from this environment."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "MEDIA_MCP_DATA_DIR": str(tmp_path / "data"),
        "MEDIA_MCP_LIBRARY_PORT": str(port),
        "MEDIA_MCP_UPLOAD_ROOTS": str(upload_dir),
        "MEDIA_MCP_CONFIRM": "token",
        "PYTHONUNBUFFERED": "1",
    }
    return StdioServerParameters(command=sys.executable, args=["-m", "media_mcp"], env=env, cwd=tmp_path)


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def ok(client: Client, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    assert not result.is_error, f"{name}: {text_of(result)}"
    content = result.structured_content
    assert isinstance(content, dict), name
    return content


def strings(value: object) -> Iterator[str]:
    """Every string in a tool's structured answer, however it is nested."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def links(content: dict[str, Any], port: int, kind: str) -> list[str]:
    """The links in an answer that point at the library port, under ``/<kind>/``."""
    return [s for s in strings(content) if s.startswith(f"http://127.0.0.1:{port}/{kind}/")]


async def test_two_processes_share_a_data_directory_before_and_after_one_exits(
    tmp_path: Path, upload_dir: Path
) -> None:
    port = free_port()
    a_log, b_log = tmp_path / "a.stderr", tmp_path / "b.stderr"
    leave, gone = anyio.Event(), anyio.Event()

    async def first_process(*, task_status: anyio.abc.TaskStatus[Client]) -> None:
        """The first process, in a task of its own so that it can exit while the second goes on."""
        with a_log.open("w") as errlog:
            async with Client(stdio_client(server(tmp_path, upload_dir, port), errlog=errlog), mode="legacy") as a:
                await ok(a, "search_files", {})  # it opens the library and binds the port before the second starts
                task_status.started(a)
                await leave.wait()
        gone.set()  # the process has ended (the SDK waits for it, killing it if it lingers)

    limits = httpx.Limits(max_keepalive_connections=0)  # every request finds whoever holds the port now
    with b_log.open("w") as b_err, anyio.fail_after(SESSION_TIMEOUT):
        async with httpx.AsyncClient(timeout=20, limits=limits) as http, anyio.create_task_group() as processes:
            a = await processes.start(first_process)
            async with Client(stdio_client(server(tmp_path, upload_dir, port), errlog=b_err), mode="legacy") as b:
                async with anyio.create_task_group() as tg:  # both write at the same time
                    for i in range(4):
                        tg.start_soon(ok, a, "create_folder", {"name": f"from-a-{i}"})
                        tg.start_soon(ok, b, "create_folder", {"name": f"from-b-{i}"})
                expected = {f"from-{who}-{i}" for who in "ab" for i in range(4)}
                for client in (a, b):
                    assert expected <= set(strings(await ok(client, "search_folders", {"query": "from-"})))

                cat = (await ok(a, "upload_file", {"path": "cat.png"}))["files"][0]["id"]
                notes = (await ok(b, "upload_file", {"path": "notes.txt"}))["files"][0]["id"]
                [from_a] = links(await ok(a, "generate_download_url", {"file_id": notes}), port, "download")
                # the second process mints a link to the port the first one serves, once that one has proven itself
                [from_b] = links(await ok(b, "generate_download_url", {"file_id": cat}), port, "download")
                assert (await http.get(from_a)).content == NOTES
                assert (await http.get(from_b)).content == PNG_16x8

                leave.set()  # the first process exits mid-session
                await gone.wait()

                # the second keeps working: all the first stored is there, and it serves the port now
                assert cat in set(strings(await ok(b, "get_file", {"file_id": cat})))
                [later] = links(await ok(b, "generate_download_url", {"file_id": notes}), port, "download")
                for url, body in ((from_a, NOTES), (from_b, PNG_16x8), (later, NOTES)):
                    got = await http.get(url)
                    assert got.status_code == 200 and got.content == body, url
                recipe = await ok(
                    b, "generate_upload_url", {"file_name": "late.txt", "mime_type": "text/plain", "size_bytes": 4}
                )
                [upload] = links(recipe, port, "upload")
                put = await http.put(upload, content=b"late", headers={"Content-Type": "text/plain"})
                assert put.status_code == 200, put.text
                assert "late.txt" in set(strings(await ok(b, "search_files", {"query": "late"})))
    for log in (a_log, b_log):
        assert "Traceback" not in log.read_text(), log.read_text()


class Impostor:
    """A loopback HTTP server that answers every request as a media-mcp library would, and records what it got."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.bodies = 0
        lock = threading.Lock()
        impostor = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with lock:
                    impostor.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                    impostor.bodies += len(body)
                reply = json.dumps({"status": "ok", "service": "media-mcp-library", "proof": "0" * 64}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = answer

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.http.server_address[1])
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def __enter__(self) -> Impostor:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.thread.join(timeout=10)


async def test_a_program_on_the_port_gets_no_key_no_bytes_and_no_links(tmp_path: Path, upload_dir: Path) -> None:
    # a file already in the data directory, put there through the library's own API
    with Library.open(LibrarySettings(data_dir=tmp_path / "data")) as library:
        transport = httpx.ASGITransport(app=create_app(library))
        async with httpx.AsyncClient(transport=transport, base_url="http://library.test") as http:
            cat = (await Api(http, library, "asgi").upload("cat.png", PNG_16x8, "image/png"))["id"]

    log = tmp_path / "stderr"
    with Impostor() as impostor, log.open("w") as errlog, anyio.fail_after(SESSION_TIMEOUT):
        params = server(tmp_path, upload_dir, impostor.port)
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            # what needs no link works in-process
            assert cat in set(strings(await ok(client, "get_file", {"file_id": cat})))
            await ok(client, "create_folder", {"name": "Still here"})
            # what would send someone to the port is refused, naming the setting to change
            for name, arguments in (
                ("generate_download_url", {"file_id": cat}),
                ("generate_upload_url", {"file_name": "dog.png", "mime_type": "image/png"}),
                ("upload_file", {"path": "cat.png"}),
            ):
                refused = await client.call_tool(name, arguments)
                text = text_of(refused)
                assert refused.is_error, f"{name}: {text}"
                assert "MEDIA_MCP_LIBRARY_PORT" in text and str(impostor.port) in text, text
                assert "http://" not in text, text
    assert impostor.seen, "the program on the port was never challenged"
    for method, path, headers in impostor.seen:
        assert method == "GET", (method, path)
        assert "authorization" not in headers, path
        assert "transfer-encoding" not in headers and headers.get("content-length", "0") == "0", path
    assert impostor.bodies == 0
    assert "Traceback" not in log.read_text(), log.read_text()
