"""Shared fixtures: a library on tmp_path, an injected clock, and HTTP clients (in-process and loopback)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import uvicorn

from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from media_mcp.settings import LibrarySettings

START = 1_800_000_000.0


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def settings(data_dir: Path) -> LibrarySettings:
    return LibrarySettings(data_dir=data_dir, library_allow_private_imports=False)


@pytest.fixture
def library(settings: LibrarySettings, clock: FakeClock) -> Iterator[Library]:
    with Library.open(settings, clock=clock) as lib:
        yield lib


class LoopbackServer:
    """The app served by uvicorn on 127.0.0.1 in a background thread.

    ``lifespan="on"`` runs the app's lifespan (the MCP streamable HTTP app needs it for its session manager).
    """

    def __init__(self, app: Any, ssl: dict[str, Any] | None = None, *, lifespan: Literal["on", "off"] = "off") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # so asyncio sets NODELAY
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)  # connections queue from here on, before uvicorn starts accepting
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan=lifespan, **(ssl or {}))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        scheme = "https" if ssl else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()
        assert not self.thread.is_alive(), "the loopback server did not stop"


@dataclass
class Api:
    """An httpx client on the library with its API key, plus helpers for common steps."""

    http: httpx.AsyncClient
    library: Library
    kind: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": self.library.api_key}

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return await self.http.request(method, f"/site-media/v1{path}", headers=headers, **kwargs)

    async def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.call(method, path, **kwargs)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def upload(
        self, name: str, data: bytes, mime: str = "application/octet-stream", **fields: Any
    ) -> dict[str, Any]:
        minted = await self.ok(
            "POST", "/files/generate-upload-url", json={"mimeType": mime, "fileName": name, **fields}
        )
        response = await self.http.put(minted["uploadUrl"], content=data, headers={"Content-Type": mime})
        assert response.status_code == 200, response.text
        file: dict[str, Any] = response.json()["file"]
        return file

    async def folder(self, name: str, parent: str | None = None) -> str:
        body: dict[str, Any] = {"displayName": name}
        if parent:
            body["parentFolderId"] = parent
        created = await self.ok("POST", "/folders", json=body)
        folder_id: str = created["folder"]["id"]
        return folder_id


@pytest.fixture
async def asgi_api(library: Library) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=create_app(library))
    async with httpx.AsyncClient(transport=transport, base_url="http://library.test") as http:
        yield Api(http, library, "asgi")


@pytest.fixture(params=["asgi", "socket"])
async def api(request: pytest.FixtureRequest, library: Library) -> AsyncIterator[Api]:
    """The same tests over an in-process ASGI transport and over a real loopback socket."""
    app = create_app(library)
    if request.param == "asgi":
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://library.test") as http:
            yield Api(http, library, "asgi")
        return
    with LoopbackServer(app) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
            yield Api(http, library, "socket")


PNG_16x8 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000010000000080800000000d51d204b"
    "0000000c4944415478da6360181c00000088000174b839670000000049454e44ae426082"
)
"""A real 16x8 PNG (black, 69 bytes): the library decodes the images it processes."""


def cli_environment(tmp_path: Path, data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment a host gives ``python -m media_mcp`` in the CLI tests: a home of its own under ``tmp_path``,
    the data directory, a free library port, and ``settings`` (variable names to values) on top."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "MEDIA_MCP_DATA_DIR": str(data_dir),
        "MEDIA_MCP_LIBRARY_PORT": "0",
        **settings,
    }
