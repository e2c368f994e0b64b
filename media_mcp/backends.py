"""Where media lives: Wix, or the embedded library, started here in the background (the entry layer).

Several media-mcp processes may share one data directory (two assistants on one laptop). Each one opens the library
itself (SQLite in WAL mode is safe across processes) and calls it in-process, so the library's API key never crosses
a socket, and neither do the bytes ``upload_file`` sends. The links the library mints (downloads, uploads, tus)
point at the library port on loopback (``MEDIA_MCP_LIBRARY_PORT``) and are signed with the data directory's key, so
any process of that directory can serve them. Whichever process binds the port serves it; the others try to bind it
every `TAKEOVER_SECONDS` and whenever they mint a link, so when it exits another takes over and its links live on.

A link must never send an agent, or its bytes, to a program that merely sits on the port. Before a process mints a
link to a port that some other process holds, the holder must prove that it serves this data directory: it answers
a fresh random challenge with a MAC under a key that only the directory's processes can read
(`media_mcp.library.proof`). If it cannot, minting fails with a message naming ``MEDIA_MCP_LIBRARY_PORT``; calls
that mint no link keep working.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import threading
from contextlib import ExitStack
from typing import TYPE_CHECKING, Literal

import anyio.to_thread

from media_mcp import errors
from media_mcp.guard.backend import Backend, StaticBackend
from media_mcp.server.run import StartupError
from media_mcp.settings import LibrarySettings, ServerSettings, WixSettings

if TYPE_CHECKING:
    import socket

    import httpx
    import uvicorn

    from media_mcp.library.service import Library
    from media_mcp.wix.client import WixMediaClient
    from media_mcp.wix.resilience import FleetLimiter

log = logging.getLogger("media_mcp.backends")

READY_TIMEOUT = 30.0
"""Seconds the first tool call waits for the library to open; at least 5 more than a start waits for the data
directory's lock (``library_start_timeout_seconds``), so a lock held too long is named, not a bare timeout."""
TAKEOVER_SECONDS = 1.0
"""How often a process that does not serve the library port tries to take it over."""
PROOF_TIMEOUT = 3.0
"""Seconds the holder of the library port has to answer a challenge."""
STOP_JOBS_SECONDS = 0.5
"""How long a stop waits for cut-short imports to record that they failed."""
GRACE_SECONDS = 1
"""How long a stop lets the library port's other transfers (downloads) run on before they are cut."""
PROOF_BODY_BYTES = 4096
"""The most of a challenge's answer read: anything longer is no proof."""


def choose_backend(settings: ServerSettings, wix: WixSettings, library: LibrarySettings) -> Backend:
    """Wix when asked for (or, with ``auto``, when its credentials are set), else the embedded library."""
    kind = settings.backend
    if kind == "auto":
        kind = "wix" if wix.configured else "local"
    if kind == "local":
        # the server's cap binds the library itself, so a link minted without a size takes no byte past it either
        cap = min(library.library_max_file_bytes, settings.max_upload_bytes)
        return LocalBackend(library.model_copy(update={"library_max_file_bytes": cap}))
    if not wix.configured:
        raise StartupError(
            "--backend wix needs Wix credentials: WIX_API_KEY and WIX_SITE_ID, or WIX_CLIENT_ID, WIX_CLIENT_SECRET "
            "and WIX_INSTANCE_ID"
        )
    from media_mcp.wix.client import WixMediaClient

    limiter = wix_limiter(settings, wix)
    client = WixMediaClient.from_settings(wix, limiter=limiter) if limiter else WixMediaClient.from_settings(wix)
    return StaticBackend(client, "wix")


def wix_limiter(settings: ServerSettings, wix: WixSettings) -> FleetLimiter | None:
    """The rate limit over the whole fleet for the Wix site ``wix`` names, when the settings name a Redis."""
    from media_mcp.fleet import Fleet
    from media_mcp.wix.resilience import FleetLimiter

    fleet = Fleet.from_settings(settings)
    if fleet is None:
        return None
    site = wix.site_id or wix.instance_id or "default"
    return FleetLimiter(
        fleet, site, limit=wix.rate_limit_per_minute, window=wix.rate_limit_window_seconds,
        fleet_size=settings.fleet_size, budget=wix.call_budget_seconds,
    )  # fmt: skip


class LibraryUnavailable(errors.MediaError):
    """The embedded library cannot do what was asked: it did not open, or links cannot point at its port.

    Not retryable: the cause (a taken port, an unusable data directory) stays until the operator acts.
    """


class LibraryPort:
    """The loopback port links point at: served by this process when it can bind it, else proven before use."""

    def __init__(self, library: Library, settings: LibrarySettings) -> None:
        self._library = library
        self.host = settings.library_host
        self.port = settings.library_port
        self._proof_key = library.data.proof_key()
        self._lock = threading.Lock()
        self._closed = False
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def serving(self) -> bool:
        return self._thread is not None

    def take(self) -> bool:
        """Serve the port from this process unless another program holds it; True if this process serves it."""
        import uvicorn

        from media_mcp.library.app import create_app
        from media_mcp.library.server import PortInUse, listen

        with self._lock:
            if self._closed:
                return False
            if self._thread is not None:
                return True
            try:
                sock = listen(self.host, self.port)
            except PortInUse:
                return False
            self.port = sock.getsockname()[1]  # the one asked for, or the one the system chose for 0
            config = uvicorn.Config(
                create_app(self._library),
                log_level="warning",
                lifespan="off",
                server_header=False,
                timeout_graceful_shutdown=GRACE_SECONDS,
            )
            self._server = uvicorn.Server(config)
            # the socket already listens: connections queue until uvicorn accepts them
            self._thread = threading.Thread(
                target=self._serve, args=(self._server, sock), name="media-mcp-library-port", daemon=True
            )
            self._thread.start()
        log.info("serving the media library's links at %s", self.base_url)
        return True

    def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except (Exception, SystemExit):  # uvicorn exits when it cannot start; the watcher tries again
            log.exception("the media library's port stopped")
        finally:
            sock.close()
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = self._server = None

    def watch(self) -> None:
        """Take the port over, within `TAKEOVER_SECONDS`, once nobody serves it."""

        def run() -> None:
            while not self._stop.wait(TAKEOVER_SECONDS):
                if not self.serving:
                    self.take()

        self._watcher = threading.Thread(target=run, name="media-mcp-library-watch", daemon=True)
        self._watcher.start()

    async def ensure(self) -> None:
        """Before a link to the port is minted: serve the port, or have its holder prove it serves this directory."""
        if self.take() or await self._proven() or self.take():  # the second try: the holder may have just left
            return
        raise LibraryUnavailable(
            f"links point at port {self.port} on {self.host}, which another program holds without proving that it "
            "serves this media library; set MEDIA_MCP_LIBRARY_PORT to a free port (or stop that program)",
            code="LIBRARY_PORT_TAKEN",
        )

    async def _proven(self) -> bool:
        """Does whoever listens on the port answer a fresh challenge with this data directory's proof key?"""
        import httpx

        from media_mcp.library import proof

        nonce = secrets.token_urlsafe(32)
        try:
            async with (
                httpx.AsyncClient(trust_env=False, timeout=PROOF_TIMEOUT) as http,
                http.stream("GET", f"{self.base_url}{proof.PROOF_PATH}", params={"nonce": nonce}) as response,
            ):
                if response.status_code != 200:
                    return False
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > PROOF_BODY_BYTES:
                        return False
        except httpx.HTTPError:
            return False
        try:
            answer = json.loads(body).get("proof")
        except (ValueError, AttributeError):
            return False
        return any(proof.check(self._proof_key, nonce, host, self.port, answer) for host in self._addresses())

    def _addresses(self) -> list[str]:
        """The addresses a holder of the port can have been reached on (a name other than localhost is not resolved)."""
        if self.host == "localhost":
            return ["127.0.0.1", "::1"]
        try:
            address = ipaddress.ip_address(self.host.strip("[]"))
        except ValueError:
            return [self.host]
        return ["127.0.0.1", "::1"] if address.is_unspecified else [address.compressed]

    def close(self) -> None:
        """Stop serving (in-flight transfers get a short grace) and stop watching; blocks, bounded."""
        with self._lock:
            self._closed = True
            server, thread = self._server, self._thread
        self._stop.set()
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(5.0)
        if self._watcher is not None:
            self._watcher.join(5.0)


class LocalBackend:
    """The embedded library on the data directory, opened in a background thread and called in-process."""

    kind: Literal["wix", "local"] = "local"

    def __init__(self, settings: LibrarySettings) -> None:
        self.settings = settings
        self._ready = threading.Event()
        self._failure: str | None = None
        self._thread: threading.Thread | None = None
        self._stack = ExitStack()
        self._library: Library | None = None
        self._port: LibraryPort | None = None
        self._http: httpx.AsyncClient | None = None
        self._client: WixMediaClient | None = None

    def upload_link_minutes(self, resumable: bool) -> int | None:
        if resumable:
            return self.settings.library_resumable_link_minutes
        return self.settings.library_upload_link_minutes

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="media-mcp-library", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        from media_mcp.library.datadir import DataDirError

        try:
            self._open()
        except DataDirError as exc:  # says all there is to say: one line, reported to the first tool call too
            log.error("the embedded media library could not start: %s", exc)
            self._failure = str(exc)
        except Exception as exc:  # reported to the first tool call, with detail in the log
            log.exception("the embedded media library could not start")
            self._failure = str(exc) or type(exc).__name__
        finally:
            self._ready.set()

    def _open(self) -> None:
        from media_mcp.library.service import Library

        library = self._stack.enter_context(Library.open(self.settings))
        port = LibraryPort(library, self.settings)
        port.take()  # the first process of the data directory serves the port; the others prove it, then use it
        if self.settings.library_port != 0:  # a port of its own (0) is never lost to another process
            port.watch()
        self._library, self._port = library, port

    async def client(self) -> WixMediaClient:
        if self._client is not None:
            return self._client
        self.start()
        patience = max(READY_TIMEOUT, self.settings.library_start_timeout_seconds + 5)
        ready = await anyio.to_thread.run_sync(self._ready.wait, patience)
        if not ready or self._failure or self._library is None or self._port is None:
            reason = self._failure or "it did not start in time"
            raise LibraryUnavailable(f"the embedded media library is not available: {reason}", code="LIBRARY_DOWN")
        if self._client is None:  # another call may have built it while this one waited
            self._client = self._connect(self._library, self._port)
        return self._client

    def _connect(self, library: Library, port: LibraryPort) -> WixMediaClient:
        """The adapter on the library's app in this process; its links point at the library port."""
        import httpx
        from pydantic import SecretStr

        from media_mcp.library.app import create_app
        from media_mcp.wix.auth import ApiKeyAuth
        from media_mcp.wix.client import WixMediaClient

        async def before_minting(request: httpx.Request) -> None:
            # every call that mints a link is a POST to .../generate-...
            if request.method == "POST" and request.url.path.rsplit("/", 1)[-1].startswith("generate-"):
                await port.ensure()

        # with a public URL configured, links point where the operator said, not at the port
        hooks = {} if self.settings.library_public_url else {"request": [before_minting]}
        transport = httpx.ASGITransport(app=create_app(library), raise_app_exceptions=False)
        self._http = httpx.AsyncClient(transport=transport, event_hooks=hooks)
        auth = ApiKeyAuth(SecretStr(library.api_key), library.site_id)
        return WixMediaClient(port.base_url, auth, http=self._http)

    async def aclose(self) -> None:
        """Stop, well within the 2 s a host gives between closing stdin and SIGTERM: uploads in flight are ended
        (they answer 503 and their links work again), imports are cut short and marked FAILED, and only then does
        the library close its database."""
        if self._thread is not None:
            await anyio.to_thread.run_sync(self._ready.wait, READY_TIMEOUT)
        if self._library is not None:
            self._library.stop_transfers()
            await self._library.stop_jobs(STOP_JOBS_SECONDS)
        if self._client is not None:
            await self._client.aclose()
        if self._http is not None:
            await self._http.aclose()
        if self._port is not None:
            await anyio.to_thread.run_sync(self._port.close)
        await anyio.to_thread.run_sync(self._stack.close)
