"""Where media lives: Wix, or the embedded library started in the background on loopback.

The library starts in its own thread after the server is up, so ``initialize`` is never delayed;
the first tool call waits for it (bounded). If the port is held by another media-mcp library on
the same data directory, that one is used instead.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from typing import TYPE_CHECKING, Literal, Protocol

import anyio.to_thread

from media_mcp import errors

if TYPE_CHECKING:
    import httpx
    import uvicorn

    from media_mcp.library.service import Library
    from media_mcp.settings import LibrarySettings
    from media_mcp.wix.asgi import AppSender
    from media_mcp.wix.client import WixMediaClient

log = logging.getLogger("media_mcp.server")

READY_TIMEOUT = 30.0


class Backend(Protocol):
    kind: Literal["wix", "local"]

    async def client(self) -> WixMediaClient:
        """The adapter to call (waiting, bounded, for the backend to come up)."""
        ...

    def start(self) -> None:
        """Begin whatever start-up the backend needs, without blocking."""
        ...

    async def aclose(self) -> None: ...


class StaticBackend:
    """A ready adapter: Wix, or a library the caller already runs (tests)."""

    def __init__(self, client: WixMediaClient, kind: Literal["wix", "local"]) -> None:
        self._client = client
        self.kind = kind

    def start(self) -> None:
        return None

    async def client(self) -> WixMediaClient:
        return self._client

    async def aclose(self) -> None:
        await self._client.aclose()


class LibraryUnavailable(Exception):
    pass


class LocalBackend:
    """The embedded library, served by uvicorn in a daemon thread on 127.0.0.1."""

    kind: Literal["wix", "local"] = "local"

    def __init__(self, settings: LibrarySettings) -> None:
        self.settings = settings
        self.base_url: str | None = None
        self._api_key: str | None = None
        self._site_id: str | None = None
        self._ready = threading.Event()
        self._failure: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._client: WixMediaClient | None = None
        self._library: Library | None = None
        self._owned_http: httpx.AsyncClient | None = None
        self._sender: AppSender | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="media-mcp-library", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._serve()
        except Exception as exc:  # reported to the first tool call, with detail in the log
            log.exception("the embedded media library could not start")
            self._failure = str(exc) or type(exc).__name__
        finally:
            self._ready.set()

    def _serve(self) -> None:
        import uvicorn

        from media_mcp.library.app import create_app
        from media_mcp.library.datadir import DataDir
        from media_mcp.library.server import PortInUse, listen
        from media_mcp.library.service import Library

        host, port = self.settings.library_host, self.settings.library_port
        try:
            sock = listen(host, port)
        except PortInUse:
            self._reuse(host, port, DataDir(self.settings.data_dir.expanduser()))
            return
        with Library.open(self.settings) as library:
            self.base_url = f"http://{host}:{sock.getsockname()[1]}"
            self._api_key, self._site_id = library.api_key, library.site_id
            self._library = library
            config = uvicorn.Config(
                create_app(library),
                log_level="warning",
                lifespan="off",
                server_header=False,
                timeout_graceful_shutdown=3,
            )
            self._server = uvicorn.Server(config)
            self._ready.set()  # the socket already listens: calls queue until uvicorn accepts them
            self._server.run(sockets=[sock])

    def _reuse(self, host: str, port: int, data: object) -> None:
        """The port is taken: use it if it is a media-mcp library that accepts our key."""
        from media_mcp.library.datadir import DataDir

        assert isinstance(data, DataDir)
        url = f"http://{host}:{port}"
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=3) as reply:  # noqa: S310 - loopback, fixed scheme
                health = json.loads(reply.read())
        except (OSError, ValueError):
            health = {}
        if not isinstance(health, dict) or health.get("service") != "media-mcp-library":
            raise LibraryUnavailable(
                f"port {port} on {host} is taken by another program; set MEDIA_MCP_LIBRARY_PORT to a free port"
            )
        if not data.api_key_path.exists() and self.settings.library_api_key is None:
            raise LibraryUnavailable(
                f"port {port} holds a media-mcp library for another data directory; "
                "set MEDIA_MCP_LIBRARY_PORT to a free port or use the same MEDIA_MCP_DATA_DIR"
            )
        key = self.settings.library_api_key
        self._api_key = key.get_secret_value() if key else data.api_key_path.read_text().strip()
        self.base_url = url
        log.info("using the media-mcp library already running at %s", url)

    async def client(self) -> WixMediaClient:
        if self._client is not None:
            return self._client
        self.start()
        ready = await anyio.to_thread.run_sync(self._ready.wait, READY_TIMEOUT)
        if not ready or self._failure or self.base_url is None or self._api_key is None:
            reason = self._failure or "it did not start in time"
            # not retryable: the reason (a taken port, a locked data directory) stays until the operator acts
            raise errors.MediaError(f"the embedded media library is not available: {reason}", code="LIBRARY_DOWN")
        import httpx
        from pydantic import SecretStr

        from media_mcp.library.app import create_app
        from media_mcp.wix.asgi import AppSender
        from media_mcp.wix.auth import ApiKeyAuth
        from media_mcp.wix.client import WixMediaClient

        auth = ApiKeyAuth(SecretStr(self._api_key), self._site_id)
        if self._library is None:  # another process serves the library: talk to it over loopback
            self._client = WixMediaClient(self.base_url, auth)
            return self._client
        # Ours: call its app in-process, skipping a socket round trip per call. The base URL stays the loopback
        # address, so the links it mints are the ones uvicorn serves to browsers, curl and tus clients.
        app = create_app(self._library)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=httpx.Timeout(60.0))
        self._sender = AppSender(app)
        self._client = WixMediaClient(self.base_url, auth, http=http, sender=self._sender)
        self._owned_http = http
        return self._client

    async def aclose(self) -> None:
        if self._sender is not None:
            await self._sender.aclose()  # let in-process requests (an import's download) finish, bounded
        if self._client is not None:
            await self._client.aclose()
        if self._owned_http is not None:
            await self._owned_http.aclose()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            await anyio.to_thread.run_sync(self._thread.join, 5.0)
