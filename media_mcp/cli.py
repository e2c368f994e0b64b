"""The ``media-mcp`` command line. Everything it says goes to stderr: stdout belongs to MCP over stdio."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from media_mcp import __version__

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from pydantic import ValidationError

    from media_mcp.guard.backend import Backend
    from media_mcp.settings import LibrarySettings, ServerSettings


EXAMPLES = """\
examples:
  media-mcp                                   MCP over stdio, as a client config starts it
  media-mcp --read-only                       the same, with no tool that writes
  media-mcp --transport http --port 8000      streamable HTTP at http://127.0.0.1:8000/mcp
  media-mcp library                           the embedded Wix-compatible media library on its own

Settings come from MEDIA_MCP_* variables (and WIX_API_KEY + WIX_SITE_ID for a real site); see the README.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="media-mcp",
        usage="%(prog)s [serve options]\n       %(prog)s serve [serve options]\n       %(prog)s library [options]",
        description="MCP server for a Wix site's Media Manager, with an embedded Wix-compatible media library.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"media-mcp {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", prog="media-mcp")
    serve = commands.add_parser(
        "serve",
        help="serve MCP (the default command: its options work without it too)",
        description="Serve the media tools over MCP: stdio by default, or streamable HTTP.",
    )
    _serve_flags(serve.add_argument)
    _serve_flags(parser.add_argument_group("serve options (the default command)").add_argument, top_level=True)
    lib = commands.add_parser(
        "library",
        help="run the embedded Wix-compatible media library on its own",
        description="Serve the Wix Media v2 REST API from a local data directory (SQLite + files).",
    )
    lib.add_argument("--data-dir", type=Path, help="data directory (default: $MEDIA_MCP_DATA_DIR or the user data dir)")
    lib.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    lib.add_argument("--port", type=int, help="port to listen on (default $MEDIA_MCP_LIBRARY_PORT or 8765)")
    lib.add_argument("--tls-cert", type=Path, help="PEM certificate: serve HTTPS (needs --tls-key)")
    lib.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    return parser


def _serve_flags(add: Callable[..., argparse.Action], top_level: bool = False) -> None:
    """The ``serve`` flags, shown and accepted with no command too (``media-mcp --read-only``).

    With no command they leave nothing in the namespace unless given (the default is ``SUPPRESS``), so that a flag
    given after ``serve`` is never overwritten by a default of the top level.
    """
    default = argparse.SUPPRESS if top_level else None
    add("--transport", choices=["stdio", "http"], default=default, help="default: stdio")
    add("--host", default=default, help="HTTP address to listen on (default 127.0.0.1)")
    add("--port", type=int, default=default, help="HTTP port (default 8000)")
    add("--stateless", action="store_true", default=default, help="HTTP without sessions")
    add(
        "--allowed-host",
        action="append",
        default=default,
        help="also accept this Host over HTTP: name, name:port or name:* (repeatable)",
    )
    add("--read-only", action="store_true", default=default, help="register no tool that writes")
    add("--backend", choices=["auto", "wix", "local"], default=default, help="default: auto (Wix if configured)")


def _run_serve(args: argparse.Namespace, arguments: list[str]) -> int:
    from pydantic import ValidationError

    from media_mcp.backends import choose_backend
    from media_mcp.server.run import StartupError
    from media_mcp.settings import LibrarySettings, ServerSettings, WixSettings

    overrides: dict[str, object] = {}
    if getattr(args, "read_only", None):
        overrides["read_only"] = True
    if getattr(args, "backend", None):
        overrides["backend"] = args.backend
    try:
        settings = ServerSettings(**overrides)
        library = LibrarySettings()
        wix = WixSettings()
        backend = choose_backend(settings, wix, library)
    except ValidationError as exc:
        sys.stderr.write(f"media-mcp: invalid setting: {_described(exc)}\n")
        return 2
    except StartupError as exc:
        sys.stderr.write(f"media-mcp: {exc}\n")
        return 2
    transport = getattr(args, "transport", None) or "stdio"
    try:
        _usable_data_dir(library.data_dir.expanduser())
        if transport == "http":
            return _serve_http(args, settings, library, backend)
        return _serve_stdio(settings, library, backend, arguments)
    except StartupError as exc:
        sys.stderr.write(f"media-mcp: {exc}\n")
        return 2


def _described(exc: ValidationError) -> str:
    """A settings error by field and reason, never with the value given: settings carry secrets."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    )


def _usable_data_dir(path: Path) -> None:
    """Refuse to start, in one line, on a data directory that cannot be created or written to.

    Checked before anything opens a file there, so the reason is the directory's, not a traceback from whichever
    part of the server touched it first. The library's own modules are not imported here: the handshake needs none.
    """
    import tempfile

    from media_mcp.server.run import StartupError

    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(path))
        try:
            with tempfile.TemporaryFile(dir=path):  # writable, here and now (a read-only mount, another owner)
                pass
        except OSError as exc:  # about the directory, not the probe's own name
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
    except OSError as exc:
        from media_mcp.library.datadir import reason

        raise StartupError(f"cannot use data directory {path}: {reason(exc, path)}") from exc


def _server_on(settings: ServerSettings, backend: Backend, data_dir: Path) -> MCPServer:
    """`create_server`, whose guard keeps its state in ``data_dir``: a damaged file there is a `StartupError`."""
    import sqlite3

    from media_mcp.server.app import create_server
    from media_mcp.server.run import StartupError

    try:
        return create_server(settings, backend, data_dir=data_dir)
    except (OSError, sqlite3.Error) as exc:
        from media_mcp.library.datadir import reason

        what = f"the guard's database in it (guard.sqlite3): {exc}" if isinstance(exc, sqlite3.Error) else ""
        raise StartupError(f"cannot use data directory {data_dir}: {what or reason(exc, data_dir)}") from exc


def _environment() -> list[str]:
    """The names (never the values) of the settings this process takes from its environment."""
    return sorted(name for name in os.environ if name.startswith(("MEDIA_MCP_", "WIX_")))


def _serve_stdio(settings: ServerSettings, library: LibrarySettings, backend: Backend, arguments: list[str]) -> int:
    import anyio

    from media_mcp.server import run

    mcp = _server_on(settings, backend, library.data_dir.expanduser())
    command = run.client_command([sys.argv[0], *arguments], sys.executable)
    run.log_to_stderr(run.stdio_banner(backend.kind, library.data_dir, command, _environment()))

    _started()
    anyio.run(_until_stdin_closes_or_sigterm, mcp.run_stdio_async, backend.aclose)
    return 0


async def _until_stdin_closes_or_sigterm(
    serve: Callable[[], Awaitable[None]], close: Callable[[], Awaitable[None]]
) -> None:
    """Serve until stdin closes or a SIGTERM comes, then close the backend (bounded, see `LocalBackend.aclose`).

    A host stops a server by closing its stdin, then (the MCP SDK's client 2 s later) SIGTERM: both end the same
    way, with the library closed cleanly. After a SIGTERM with stdin still open the process ends right after that
    close: the transport's reader blocks in a thread that no cancellation reaches.
    """
    import signal

    import anyio

    stop = anyio.Event()
    served = anyio.Event()
    signalled = False

    async def serving() -> None:
        try:
            await serve()
        finally:
            served.set()
            stop.set()

    async def watching() -> None:
        nonlocal signalled
        try:
            with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:
                    signalled = True
                    stop.set()
                    return
        except NotImplementedError:  # no signal handlers on this event loop (Windows)
            return

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(serving)
        tasks.start_soon(watching)
        await stop.wait()
        with anyio.CancelScope(shield=True):
            await close()
        if signalled and not served.is_set():
            logging.shutdown()
            sys.stderr.flush()
            os._exit(0)
        tasks.cancel_scope.cancel()


def _serve_http(args: argparse.Namespace, settings: ServerSettings, library: LibrarySettings, backend: Backend) -> int:
    import socket

    import uvicorn

    from media_mcp.server import run

    host = getattr(args, "host", None) or "127.0.0.1"
    port = getattr(args, "port", None)
    port = 8000 if port is None else port
    if not 0 <= port <= 65535:
        raise run.StartupError(f"--port {port} is not a TCP port (0-65535)")
    bind = run.parse_bind(host)
    mcp = _server_on(settings, backend, library.data_dir.expanduser())
    allowed = getattr(args, "allowed_host", None) or []
    app = run.http_app(mcp, settings, host, bool(getattr(args, "stateless", False)), allowed, port=port)
    backend.start()
    _started()
    token = bool(settings.http_token and settings.http_token.get_secret_value())  # as `run.http_app` reads it

    class Announcing(uvicorn.Server):
        """Says where it listens once it does: the port too when ``--port 0`` let the system choose it."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                listening: int = self.servers[0].sockets[0].getsockname()[1]
                run.log_to_stderr(run.http_banner(backend.kind, library.data_dir, bind, listening, token))

    import signal
    import threading

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # uvicorn re-raises the signal that stopped it once it has shut down: SIGTERM's default action would kill the
    # process there, before the backend is closed; as a KeyboardInterrupt (like SIGINT) it ends here instead
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, interrupt) if main else None
    try:
        config = uvicorn.Config(app, host=bind.socket_host, port=port, log_level="warning", server_header=False)
        Announcing(config).run()
    except KeyboardInterrupt:
        pass
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        import anyio

        anyio.run(backend.aclose)  # stop the embedded library's thread and close its database cleanly
    return 0


def _run_library(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from media_mcp.library.datadir import DataDirError
    from media_mcp.library.server import PortInUse, serve
    from media_mcp.server.run import StartupError
    from media_mcp.settings import LibrarySettings

    if bool(args.tls_cert) != bool(args.tls_key):
        sys.stderr.write("media-mcp library: --tls-cert and --tls-key go together\n")
        return 2
    for path in (args.tls_cert, args.tls_key):
        if path is not None and not path.is_file():
            sys.stderr.write(f"media-mcp library: {path} is not a readable file\n")
            return 2
    overrides = {
        k: v
        for k, v in {"data_dir": args.data_dir, "library_host": args.host, "library_port": args.port}.items()
        if v is not None
    }
    try:
        settings = LibrarySettings(**overrides)
    except ValidationError as exc:
        sys.stderr.write(f"media-mcp library: invalid setting: {_described(exc)}\n")
        return 2
    try:
        _usable_data_dir(settings.data_dir.expanduser())
        _started()
        serve(settings, args.tls_cert, args.tls_key)
    except PortInUse as exc:
        sys.stderr.write(f"media-mcp library: {exc}; choose another with --port or MEDIA_MCP_LIBRARY_PORT\n")
        return 1
    except (StartupError, DataDirError) as exc:
        sys.stderr.write(f"media-mcp library: {exc}\n")
        return 2
    return 0


_collector_paused = False
"""Whether `main` paused Python's cycle collector for the start-up, and `_started` has not yet turned it back on."""


def _started() -> None:
    """The start-up is over: turn Python's cycle collector back on, with what start-up made set aside for good.

    `main` pauses the collector while the process imports the SDK and pydantic and builds the tools' schemas. That
    makes well over a hundred thousand objects that live as long as the process, and the collector would otherwise
    walk them again and again as they pile up (about 50 ms of a 470 ms start on a 2-core machine; see
    docs/benchmarks.md). `gc.freeze` moves them where no later collection looks, so the first collections after
    start-up do not walk them either; the few cycles start-up left behind stay with them (about 4,500 objects).
    """
    global _collector_paused
    if _collector_paused:
        _collector_paused = False
        gc.freeze()
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    global _collector_paused
    if gc.isenabled():  # not when a caller has its own reasons to keep it off
        gc.disable()
        _collector_paused = True
    try:
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        arguments = sys.argv[1:] if argv is None else argv
        args = _parser().parse_args(arguments)
        if args.command == "library":
            return _run_library(args)
        return _run_serve(args, arguments)
    finally:
        if _collector_paused:  # a run that ended before it started serving (bad settings, --help)
            _collector_paused = False
            gc.enable()
