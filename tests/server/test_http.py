"""Streamable HTTP: /healthz, MCP sessions (stateful and stateless), DNS-rebinding protection, the bearer token.

The app is built in-process with ``run.http_app`` and served by uvicorn on 127.0.0.1 (lifespan on, so the SDK's
session manager runs). "Off loopback" is simulated by building the app for 0.0.0.0 while serving it on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from media_mcp.server.run import StartupError, http_app
from media_mcp.settings import ServerSettings
from tests.conftest import LoopbackServer, PNG_16x8
from tests.server.conftest import MakeServer

pytestmark = pytest.mark.anyio

TOKEN = "correct-horse-battery-staple"
TIMEOUT = 30.0
JSON_RPC_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}  # fmt: skip
TOOLS = {
    "search_folders", "search_files", "get_file", "get_folder", "generate_download_url", "generate_upload_url",
    "move_to_trash", "restore_from_trash", "create_folder", "update_file", "import_file", "upload_file",
}  # fmt: skip


@contextmanager
def serve(
    make_server: MakeServer,
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    stateless: bool = False,
    allowed_hosts: list[str] | None = None,
) -> Iterator[str]:
    """The HTTP app as built for ``host``, served on 127.0.0.1; yields the base URL."""
    settings = ServerSettings(http_token=SecretStr(token) if token else None)
    app = http_app(make_server(), settings, host, stateless, allowed_hosts or [])
    with LoopbackServer(app, lifespan="on") as server:
        yield server.url


def rpc_message(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer in a response, whether plain JSON or an SSE stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        messages = [json.loads(d) for d in data if d]
        assert messages, response.text
        last: dict[str, Any] = messages[-1]
        return last
    body: dict[str, Any] = response.json()
    return body


async def use_tools(client: Client, upload_root: Path) -> None:
    """A short tour over the session: list, write, upload, search, read."""
    assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
    folder = await client.call_tool("create_folder", {"name": "Over HTTP"})
    assert not folder.is_error and folder.structured_content is not None, folder.content
    folder_id = folder.structured_content["folder"]["id"]
    (upload_root / "cat.png").write_bytes(PNG_16x8)
    uploaded = await client.call_tool("upload_file", {"path": "cat.png", "folder_id": folder_id})
    assert not uploaded.is_error and uploaded.structured_content is not None, uploaded.content
    file_id = uploaded.structured_content["file"]["id"]
    found = await client.call_tool("search_files", {"folder_id": folder_id})
    assert found.structured_content is not None and [row[0] for row in found.structured_content["rows"]] == [file_id]
    details = await client.call_tool("get_file", {"file_id": file_id})
    assert details.structured_content is not None
    assert details.structured_content["files"][0]["width"] == 16


async def test_healthz_needs_no_auth(make_server: MakeServer) -> None:
    with serve(make_server) as url:
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
            reply = await http.get("/healthz")
            assert reply.status_code == 200
            assert reply.json()["status"] == "ok"
            assert (await http.head("/healthz")).status_code == 200


async def test_mcp_session(make_server: MakeServer, upload_root: Path, mode: str) -> None:
    with serve(make_server) as url, anyio.fail_after(TIMEOUT):
        async with Client(f"{url}/mcp", mode=mode) as client:
            await use_tools(client, upload_root)


async def test_rebinding_host_and_foreign_origin_are_refused(make_server: MakeServer) -> None:
    with serve(make_server) as url, anyio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
            evil_host = await http.post("/mcp", headers={**JSON_RPC_HEADERS, "Host": "evil.example"}, json=INITIALIZE)
            assert evil_host.status_code == 421
            evil_origin = {**JSON_RPC_HEADERS, "Origin": "http://evil.example"}
            assert (await http.post("/mcp", headers=evil_origin, json=INITIALIZE)).status_code == 403
            own_origin = {**JSON_RPC_HEADERS, "Origin": url}
            fine = await http.post("/mcp", headers=own_origin, json=INITIALIZE)
            assert fine.status_code == 200, fine.text
            assert rpc_message(fine)["result"]["serverInfo"]["name"] == "media-mcp"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])  # noqa: S104 - never bound
async def test_public_bind_without_token_refuses_to_start(make_server: MakeServer, host: str) -> None:
    with pytest.raises(StartupError, match="MEDIA_MCP_HTTP_TOKEN"):
        http_app(make_server(), ServerSettings(http_token=None), host, False, [])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
async def test_loopback_needs_no_token(make_server: MakeServer, host: str) -> None:
    assert http_app(make_server(), ServerSettings(http_token=None), host, False, []) is not None


def test_cli_public_bind_without_token_exits_2(tmp_path: Path) -> None:
    """The CLI path of the same refusal. 192.0.2.1 (TEST-NET-1) is not loopback and is never assigned here, so even
    a regression could not expose a server beyond this machine."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MEDIA_MCP_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "media_mcp", "--transport", "http", "--host", "192.0.2.1", "--port", "8000"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "MEDIA_MCP_HTTP_TOKEN" in done.stderr.decode()
    assert done.stdout == b""


async def test_bearer_token_off_loopback(make_server: MakeServer, upload_root: Path, mode: str) -> None:
    public = "0.0.0.0"  # noqa: S104 - the app is built as if for it, but served on 127.0.0.1
    with serve(make_server, host=public, token=TOKEN, allowed_hosts=["127.0.0.1:*"]) as url:
        with anyio.fail_after(TIMEOUT):
            async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
                assert (await http.get("/healthz")).status_code == 200
                missing = await http.post("/mcp", headers=JSON_RPC_HEADERS, json=INITIALIZE)
                assert missing.status_code == 401
                assert missing.headers["www-authenticate"].startswith("Bearer")
                for wrong in ("Bearer nope", f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}"):
                    refused = await http.post(
                        "/mcp", headers={**JSON_RPC_HEADERS, "Authorization": wrong}, json=INITIALIZE
                    )
                    assert refused.status_code == 401, wrong
                    assert TOKEN not in refused.text
                good = {**JSON_RPC_HEADERS, "Authorization": f"Bearer {TOKEN}"}
                right = await http.post("/mcp", headers=good, json=INITIALIZE)
                assert right.status_code == 200, right.text
                # the token does not switch the rebinding protection off
                rebound = await http.post("/mcp", headers={**good, "Host": "evil.example"}, json=INITIALIZE)
                assert rebound.status_code == 421
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with (
                httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(TIMEOUT)) as authed,
                Client(streamable_http_client(f"{url}/mcp", http_client=authed), mode=mode) as client,
            ):
                await use_tools(client, upload_root)


async def test_stateless(make_server: MakeServer, upload_root: Path, mode: str) -> None:
    with serve(make_server, stateless=True) as url, anyio.fail_after(TIMEOUT):
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
            listed = await http.post(
                "/mcp", headers=JSON_RPC_HEADERS, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            )
            assert listed.status_code == 200, listed.text
            assert "mcp-session-id" not in listed.headers
            assert {t["name"] for t in rpc_message(listed)["result"]["tools"]} == TOOLS
            call = {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "search_folders", "arguments": {}},
            }
            called = await http.post("/mcp", headers=JSON_RPC_HEADERS, json=call)
            assert called.status_code == 200, called.text
            assert "mcp-session-id" not in called.headers
            result = rpc_message(called)["result"]
            assert not result.get("isError") and result["structuredContent"]["folders"] == []
        async with Client(f"{url}/mcp", mode=mode) as client:
            await use_tools(client, upload_root)
