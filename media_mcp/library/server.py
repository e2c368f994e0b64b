"""Serving the library over HTTP(S) with uvicorn."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from pathlib import Path

import uvicorn

from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from media_mcp.settings import LibrarySettings

log = logging.getLogger("media_mcp.library")


class PortInUse(Exception):
    """The port is taken by another program."""


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket before anything else, so the announced address is the real one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP (accepted sockets inherit
    # it); without it Nagle and delayed ACKs add ~40 ms to every small request on loopback.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise PortInUse(f"{host}:{port} is already in use or not available ({exc.strerror})") from exc
    return sock


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class _Announcing(uvicorn.Server):
    """Says where it serves once it does, so whoever waits for the banner may stop it from then on."""

    def __init__(self, config: uvicorn.Config, banner: str) -> None:
        super().__init__(config)
        self._banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            sys.stderr.write(self._banner)
            sys.stderr.flush()


def serve(settings: LibrarySettings, tls_cert: Path | None = None, tls_key: Path | None = None) -> None:
    """Run the library until interrupted (Ctrl-C / SIGTERM stop it cleanly, from the first moment).

    uvicorn re-raises the signal that stopped it once it has shut down; SIGTERM's default action would then kill
    the process (skipping the library's close) and SIGINT would surface as a KeyboardInterrupt traceback. Both
    become a KeyboardInterrupt, absorbed here once everything is closed; one that comes while the library opens
    closes what was opened the same way.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    try:
        _serve(settings, tls_cert, tls_key)
    except KeyboardInterrupt:
        log.info("stopped by a signal")
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    log.info("library stopped")


def _serve(settings: LibrarySettings, tls_cert: Path | None, tls_key: Path | None) -> None:
    sock = listen(settings.library_host, settings.library_port)
    try:
        with Library.open(settings) as library:
            port = sock.getsockname()[1]
            scheme = "https" if tls_cert else "http"
            host = f"[{settings.library_host}]" if ":" in settings.library_host else settings.library_host
            base = f"{scheme}://{host}:{port}"
            key_source = "MEDIA_MCP_LIBRARY_API_KEY" if settings.library_api_key else str(library.data.api_key_path)
            banner = (
                f"media-mcp library: serving the Wix Media REST API at {base}/site-media/v1\n"
                f"  data:    {library.data.root}\n"
                f"  API key: {key_source} (send it as the Authorization header)\n"
                "  stop:    Ctrl-C\n"
            )
            config = uvicorn.Config(
                create_app(library),
                host=settings.library_host,
                port=port,
                ssl_certfile=str(tls_cert) if tls_cert else None,
                ssl_keyfile=str(tls_key) if tls_key else None,
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=5,
                server_header=False,
            )
            _Announcing(config, banner).run(sockets=[sock])
    finally:
        sock.close()
