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


def _run_until_signalled(server: uvicorn.Server, sockets: list[socket.socket]) -> None:
    """Run uvicorn; a SIGINT or SIGTERM that stopped it ends here instead of killing the process.

    uvicorn re-raises the signal that stopped it once it has shut down; SIGTERM's default action
    would then kill the process (skipping the library's close) and SIGINT would surface as a
    KeyboardInterrupt traceback. Both become a KeyboardInterrupt that is absorbed here.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:
        log.info("stopped by a signal")
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def serve(settings: LibrarySettings, tls_cert: Path | None = None, tls_key: Path | None = None) -> None:
    """Run the library until interrupted (Ctrl-C / SIGTERM stop it cleanly)."""
    sock = listen(settings.library_host, settings.library_port)
    try:
        with Library.open(settings) as library:
            port = sock.getsockname()[1]
            scheme = "https" if tls_cert else "http"
            host = f"[{settings.library_host}]" if ":" in settings.library_host else settings.library_host
            base = f"{scheme}://{host}:{port}"
            key_source = "MEDIA_MCP_LIBRARY_API_KEY" if settings.library_api_key else str(library.data.api_key_path)
            sys.stderr.write(
                f"media-mcp library: serving the Wix Media REST API at {base}/site-media/v1\n"
                f"  data:    {library.data.root}\n"
                f"  API key: {key_source} (send it as the Authorization header)\n"
                "  stop:    Ctrl-C\n"
            )
            sys.stderr.flush()
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
            _run_until_signalled(uvicorn.Server(config), [sock])
    finally:
        sock.close()
    log.info("library stopped")
