"""Fixtures for the MCP server: a library-backed adapter, a server factory, and clients in both protocol eras."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.extension import ClientExtension
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.server.mcpserver import MCPServer
from pydantic import SecretStr

from media_mcp.guard import StaticBackend
from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from media_mcp.server.app import create_server
from media_mcp.settings import ServerSettings
from media_mcp.wix.auth import ApiKeyAuth
from media_mcp.wix.client import WixMediaClient
from tests.conftest import FakeClock

MakeServer = Callable[..., MCPServer]


class ShowsApps(ClientExtension):
    """A client that renders MCP Apps, as Claude, VS Code or the tests' browser host say so at the handshake."""

    identifier = EXTENSION_ID

    def settings(self) -> dict[str, Any]:
        return {"mimeTypes": [APP_MIME_TYPE]}


@pytest.fixture
async def wix(library: Library) -> AsyncIterator[WixMediaClient]:
    """The adapter on the embedded library, in-process, as the server's local backend wires it."""
    app = create_app(library)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    auth = ApiKeyAuth(SecretStr(library.api_key), library.site_id)
    yield WixMediaClient("http://library.test", auth, http=http)
    await http.aclose()


@pytest.fixture
def upload_root(tmp_path: Path) -> Path:
    root = tmp_path / "uploads"
    root.mkdir()
    return root


@pytest.fixture
def server_dir(tmp_path: Path) -> Path:
    """Where the server keeps its audit log and confirmation key."""
    path = tmp_path / "server"
    path.mkdir()
    return path


@pytest.fixture
def make_server(
    wix: WixMediaClient, library: Library, server_dir: Path, upload_root: Path, clock: FakeClock
) -> MakeServer:
    """``make_server(read_only=True, confirm="token", ...)``: a server over the library with those settings."""

    def build(**overrides: Any) -> MCPServer:
        overrides.setdefault("upload_roots", str(upload_root))
        settings = ServerSettings(**overrides)
        lives = (library.settings.library_upload_link_minutes, library.settings.library_resumable_link_minutes)
        backend = StaticBackend(wix, "local", link_minutes=lives)
        return create_server(settings, backend, data_dir=server_dir, clock=clock)

    return build


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    """Both protocol eras: 2026-07-28 (auto) and the 2025-11-25 handshake (legacy)."""
    value: str = request.param
    return value


@pytest.fixture
async def client(make_server: MakeServer, mode: str) -> AsyncIterator[Client]:
    """A client on a server with default settings."""
    async with Client(make_server(), mode=mode) as session:
        yield session


def audit_lines(server_dir: Path) -> list[str]:
    path = server_dir / "audit.jsonl"
    return path.read_text().splitlines() if path.exists() else []
