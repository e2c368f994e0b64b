"""The command as a subprocess over stdio, the way an assistant runs it.

Every tool through the SDK client (both protocol eras) on the embedded library; a hand-driven
JSON-RPC session proving stdout carries nothing but protocol; the flags and the start-up failures.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent, jsonrpc_message_adapter

from media_mcp import __version__
from tests.conftest import PNG_16x8
from tests.tool_names import ALL_TOOLS, READ_TOOLS

pytestmark = pytest.mark.anyio

SESSION_TIMEOUT = 90.0
"""Bound on one whole spawned session: start-up (SDK import ~0.6 s, more without .pyc) plus every call."""
LINE_TIMEOUT = 30.0
BANNER = "media-mcp: serving MCP over stdio"
PROTOCOL = "2025-11-25"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def upload_dir(tmp_path: Path) -> Path:
    root = tmp_path / "uploads"
    root.mkdir()
    (root / "cat.png").write_bytes(PNG_16x8)
    return root


def server_env(tmp_path: Path, upload_dir: Path, **extra: str) -> dict[str, str]:
    """An isolated environment: own data dir and home, a free library port, token confirmation, no Wix."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "MEDIA_MCP_DATA_DIR": str(tmp_path / "data"),
        "MEDIA_MCP_LIBRARY_PORT": "0",
        "MEDIA_MCP_UPLOAD_ROOTS": str(upload_dir),
        "MEDIA_MCP_CONFIRM": "token",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def params(tmp_path: Path, env: dict[str, str], *args: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "media_mcp", *args], env=env, cwd=tmp_path)


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def ok(client: Client, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call a tool that must succeed; its structured content."""
    result = await client.call_tool(name, arguments)
    assert not result.is_error, f"{name}: {text_of(result)}"
    content = result.structured_content
    assert isinstance(content, dict), name
    return content


# --- every tool over stdio, both eras ----------------------------------------------------------


async def test_every_tool_over_stdio(tmp_path: Path, upload_dir: Path, mode: str) -> None:
    env = server_env(tmp_path, upload_dir)
    stderr_path = tmp_path / "stderr.txt"
    reported: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reported.append((progress, total))

    with stderr_path.open("w") as errlog, anyio.fail_after(SESSION_TIMEOUT):
        async with (
            Client(stdio_client(params(tmp_path, env), errlog=errlog), mode=mode) as client,
            httpx.AsyncClient(timeout=20) as http,
        ):
            assert {tool.name for tool in (await client.list_tools()).tools} == ALL_TOOLS

            # folders
            assert (await ok(client, "search_folders", {}))["folders"] == []
            folder = (await ok(client, "create_folder", {"name": "Holiday"}))["folder"]
            assert folder["name"] == "Holiday"
            found = await ok(client, "search_folders", {"query": "holiday"})
            assert [f["id"] for f in found["folders"]] == [folder["id"]]

            # a local upload, with progress
            uploaded = await client.call_tool(
                "upload_file", {"path": "cat.png", "folder_id": folder["id"]}, progress_callback=on_progress
            )
            assert not uploaded.is_error, text_of(uploaded)
            assert uploaded.structured_content is not None
            cat = uploaded.structured_content["files"][0]
            assert (cat["name"], cat["folder"]["id"], cat["private"]) == ("cat.png", folder["id"], False)
            assert reported and reported[-1][0] == len(PNG_16x8)

            # find it, read it, download it through the minted link
            table = await ok(client, "search_files", {"query": "cat"})
            assert [row[table["columns"].index("id")] for row in table["rows"]] == [cat["id"]]
            details = (await ok(client, "get_file", {"file_id": cat["id"]}))["files"]
            assert [(d["name"], d["type"], d["size"], d["width"], d["height"]) for d in details] == [
                ("cat.png", "IMAGE", len(PNG_16x8), 16, 8)
            ]
            link = await ok(client, "generate_download_url", {"file_id": cat["id"]})
            assert link["expiration_minutes"] >= 1 and not link["clamped"]
            url = link["links"][0]["url"]
            assert url.startswith("http://127.0.0.1:")
            got = await http.get(url)
            assert got.status_code == 200 and got.content == PNG_16x8

            # an upload link a plain HTTP client can use
            recipe = await ok(
                client, "generate_upload_url",
                {"file_name": "dog.png", "mime_type": "image/png", "private": True, "size_bytes": len(PNG_16x8)},
            )  # fmt: skip
            assert recipe["protocol"] == "PUT" and recipe["private"] is True
            put = await http.put(recipe["upload_url"], content=PNG_16x8, headers={"Content-Type": "image/png"})
            assert put.status_code == 200, put.text
            dog_id = put.json()["file"]["id"]
            dog = (await ok(client, "get_file", {"file_ids": [dog_id, cat["id"]]}))["files"]
            assert {d["name"]: d["private"] for d in dog} == {"dog.png": True, "cat.png": False}

            # rename and relabel
            updated = await ok(client, "update_file", {"file_id": cat["id"], "name": "kitten.png", "labels": ["pets"]})
            assert updated["files"][0]["name"] == "kitten.png"
            renamed = (await ok(client, "get_file", {"file_id": cat["id"]}))["files"][0]
            assert (renamed["name"], renamed["labels"]) == ("kitten.png", ["pets"])

            # trash: preview and token first, then the act
            preview = await ok(client, "move_to_trash", {"file_ids": [cat["id"]]})
            assert preview["status"] == "confirmation_required" and len(preview["items"]) == 1
            assert [item["name"] for item in preview["items"]] == ["kitten.png"]
            token = preview["confirmation_token"]
            assert token
            assert not (await ok(client, "get_file", {"file_id": cat["id"]}))["files"][0]["in_trash"]
            done = await ok(client, "move_to_trash", {"file_ids": [cat["id"]], "confirmation_token": token})
            assert done["status"] == "done"
            assert (await ok(client, "get_file", {"file_id": cat["id"]}))["files"][0]["in_trash"]
            trash = await ok(client, "search_files", {"root": "TRASH_ROOT"})
            assert cat["id"] in [row[0] for row in trash["rows"]]

            restored = await ok(client, "restore_from_trash", {"file_ids": [cat["id"]]})
            assert restored["status"] == "done" and [
                i["id"] for i in restored["items"] if i["kind"] == "file" and i["status"] == "done"
            ] == [cat["id"]]
            back = (await ok(client, "get_file", {"file_id": cat["id"]}))["files"][0]
            assert (back["in_trash"], back["folder"]["id"]) == (False, folder["id"])

            # importing from loopback must not turn the library into an SSRF pivot
            await _import_is_refused(client)

    logged = stderr_path.read_text()
    assert BANNER in logged
    assert "Traceback" not in logged, logged


async def _import_is_refused(client: Client) -> None:
    imported = await client.call_tool("import_file", {"url": "http://127.0.0.1:9/secret.png"})
    if imported.is_error:
        assert "loopback" in text_of(imported), text_of(imported)
        return
    # the other acceptable outcome: the import is accepted but ends FAILED (bounded by the session timeout)
    assert imported.structured_content is not None
    file_id = imported.structured_content["file"]["id"]
    status = imported.structured_content["file"]["status"]
    while status == "PENDING":
        status = (await ok(client, "get_file", {"file_id": file_id}))["files"][0]["status"]
    assert status == "FAILED"


async def test_read_only_lists_four_tools(tmp_path: Path, upload_dir: Path, mode: str) -> None:
    env = server_env(tmp_path, upload_dir)
    with anyio.fail_after(SESSION_TIMEOUT):
        async with Client(params(tmp_path, env, "--read-only"), mode=mode) as client:
            assert {tool.name for tool in (await client.list_tools()).tools} == READ_TOOLS
            assert (await ok(client, "search_files", {}))["rows"] == []


async def test_library_port_taken_by_another_program(tmp_path: Path, upload_dir: Path) -> None:
    """A port held by something else: calls work in-process; minting a link says which variable to change."""
    stderr_path = tmp_path / "stderr.txt"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))  # bound, not listening: the library cannot bind it and nothing answers
        port = str(holder.getsockname()[1])
        env = server_env(tmp_path, upload_dir, MEDIA_MCP_LIBRARY_PORT=port)
        with stderr_path.open("w") as errlog, anyio.fail_after(SESSION_TIMEOUT):
            async with Client(stdio_client(params(tmp_path, env), errlog=errlog), mode="legacy") as client:
                assert (await ok(client, "search_files", {}))["rows"] == []
                recipe = {"file_name": "dog.png", "mime_type": "image/png"}
                minted = await client.call_tool("generate_upload_url", recipe)
                assert minted.is_error
                assert "MEDIA_MCP_LIBRARY_PORT" in text_of(minted) and port in text_of(minted), text_of(minted)
                assert {tool.name for tool in (await client.list_tools()).tools} == ALL_TOOLS
                again = await client.call_tool("upload_file", {"path": "cat.png"})  # its bytes need a link too
                assert again.is_error and "MEDIA_MCP_LIBRARY_PORT" in text_of(again), text_of(again)
    assert BANNER in stderr_path.read_text()


# --- stdout is protocol only ---------------------------------------------------------------------


class RawSession:
    """``python -m media_mcp`` fed hand-written JSON-RPC lines; a thread queues every stdout line."""

    def __init__(self, cwd: Path, env: dict[str, str], stderr: IO[bytes]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "media_mcp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=cwd,
        )
        self.queue: queue.Queue[bytes | None] = queue.Queue()
        self.lines: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.queue.put(line)
        self.queue.put(None)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def next_line(self, deadline: float) -> bytes | None:
        line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
        if line is not None:
            self.lines.append(line)
        return line

    def response(self, request_id: int, timeout: float = LINE_TIMEOUT) -> dict[str, Any]:
        """Read lines until the answer to ``request_id`` (bounded); every line read is kept for inspection."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(deadline)
            assert line is not None, f"stdout closed before the answer to {request_id}"
            message = json.loads(line)
            if isinstance(message, dict) and message.get("id") == request_id and "method" not in message:
                return message

    def close(self, timeout: float = LINE_TIMEOUT) -> int:
        """Close stdin, read stdout to its end, and wait for the exit code (all bounded)."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        deadline = time.monotonic() + timeout
        while self.next_line(deadline) is not None:
            pass
        return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))

    def call_tool(self, request_id: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self.send(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/call",
                "params": {"name": name, "arguments": arguments},
            }
        )
        result: dict[str, Any] = self.response(request_id)["result"]
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.reader.join(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def raw_session(tmp_path: Path, upload_dir: Path) -> Iterator[tuple[RawSession, Path]]:
    stderr_path = tmp_path / "raw-stderr.txt"
    with stderr_path.open("wb") as stderr:
        session = RawSession(tmp_path, server_env(tmp_path, upload_dir), stderr)
        try:
            yield session, stderr_path
        finally:
            session.kill()


def test_stdout_carries_only_json_rpc(raw_session: tuple[RawSession, Path]) -> None:
    session, stderr_path = raw_session
    session.send(INITIALIZE)
    init = session.response(1)
    assert init["result"]["protocolVersion"] == PROTOCOL
    assert init["result"]["serverInfo"]["name"] == "media-mcp"
    session.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    session.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert {tool["name"] for tool in session.response(2)["result"]["tools"]} == ALL_TOOLS
    # calls that start the embedded library (uvicorn, SQLite) and upload while the protocol runs
    found = session.call_tool(3, "search_files", {})
    assert not found.get("isError") and found["structuredContent"]["rows"] == []
    uploaded = session.call_tool(4, "upload_file", {"path": "cat.png"})
    assert not uploaded.get("isError"), uploaded
    assert session.call_tool(5, "get_file", {"file_id": "nope"})["isError"] is True

    assert session.close() == 0
    assert len(session.lines) >= 5
    for line in session.lines:
        assert line.endswith(b"\n"), line
        message = json.loads(line)
        assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", line
        jsonrpc_message_adapter.validate_json(line)
    logged = stderr_path.read_text()
    assert BANNER in logged
    assert "Traceback" not in logged, logged


CALL_TIME_MODULES = ("media_mcp.wix.models", "media_mcp.wix.messages", "media_mcp.wix.client", "media_mcp.library",
                     "regex")  # fmt: skip
"""What only a tool call needs: the REST shapes, the adapter, the library, the Unicode classes of text cleaning."""


def _imported(log: str) -> set[str]:
    """The modules a ``PYTHONPROFILEIMPORTTIME`` log names (``import time: self | cumulative | name``)."""
    return {line.rsplit("|", 1)[1].strip() for line in log.splitlines() if line.startswith("import time:")}


def test_the_handshake_loads_nothing_only_a_call_needs(tmp_path: Path, upload_dir: Path) -> None:
    """A host waits for the ``initialize`` answer before anything else: the server answers it without loading the
    REST shapes, the adapter, the library or the Unicode classes; they load once the handshake is over (the backend
    starts on the next message, in the background) or with the first call."""
    stderr_path = tmp_path / "stderr.txt"
    env = server_env(tmp_path, upload_dir, PYTHONPROFILEIMPORTTIME="1")
    with stderr_path.open("wb") as stderr:
        session = RawSession(tmp_path, env, stderr)
        try:
            session.send(INITIALIZE)
            session.response(1)
            started = _imported(stderr_path.read_text())
            assert "media_mcp.server.app" in started and "media_mcp.guard.core" in started
            assert not [name for name in started if name.startswith(CALL_TIME_MODULES)]
            session.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            found = session.call_tool(2, "search_files", {})
            assert not found.get("isError"), found
            missing = session.call_tool(3, "get_file", {"file_id": "caf\u00e9\u200b"})  # quoted back, escaped
            assert missing["isError"] is True and "\\u200b" in missing["content"][0]["text"], missing
            called = _imported(stderr_path.read_text())
            assert {"media_mcp.wix.models", "media_mcp.wix.messages", "media_mcp.library", "regex"} <= called
            assert session.close() == 0
        finally:
            session.kill()


# --- flags and start-up failures ------------------------------------------------------------------


def commands() -> list[list[str]]:
    found = [[sys.executable, "-m", "media_mcp"]]
    script = Path(sys.executable).with_name("media-mcp")
    if script.exists():
        found.append([str(script)])
    return found


def each_command() -> list[Any]:
    """`commands`, the first (``python -m``, which tests/test_cli_help.py also runs) with the slow tests only."""
    found = commands()
    return [
        pytest.param(command, id=Path(command[-1]).name, marks=[pytest.mark.slow] if len(found) > 1 and n == 0 else [])
        for n, command in enumerate(found)
    ]


@pytest.mark.parametrize("command", each_command())
@pytest.mark.parametrize("flags", [["--version"], ["--help"], ["serve", "--help"]], ids=" ".join)
def test_version_and_help(tmp_path: Path, upload_dir: Path, command: list[str], flags: list[str]) -> None:
    done = subprocess.run(
        [*command, *flags], env=server_env(tmp_path, upload_dir), cwd=tmp_path, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    if flags == ["--version"]:
        assert out.strip() == f"media-mcp {__version__}"
    elif flags == ["--help"]:
        assert "serve" in out and "library" in out
    else:
        assert all(flag in out for flag in ("--transport", "--read-only", "--backend", "--stateless"))


@pytest.mark.parametrize("args", [["--backend", "wix"], ["serve", "--backend", "wix"]])
def test_wix_backend_without_credentials(tmp_path: Path, upload_dir: Path, args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "media_mcp", *args],
        env=server_env(tmp_path, upload_dir),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "WIX_API_KEY" in done.stderr.decode()
    assert done.stdout == b""
