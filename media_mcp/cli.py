"""The ``media-mcp`` command line. Everything it says goes to stderr: stdout belongs to MCP over stdio."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from media_mcp import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="media-mcp",
        description="MCP server for a Wix site's Media Manager, with an embedded Wix-compatible media library.",
    )
    parser.add_argument("--version", action="version", version=f"media-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
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


def _run_library(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from media_mcp.library.datadir import DataDirBusy
    from media_mcp.library.server import PortInUse, serve
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
        sys.stderr.write(f"media-mcp library: invalid setting: {exc}\n")
        return 2
    try:
        serve(settings, args.tls_cert, args.tls_key)
    except PortInUse as exc:
        sys.stderr.write(f"media-mcp library: {exc}; choose another with --port or MEDIA_MCP_LIBRARY_PORT\n")
        return 1
    except DataDirBusy as exc:
        sys.stderr.write(f"media-mcp library: {exc}; use another --data-dir\n")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    if args.command == "library":
        return _run_library(args)
    _parser().print_help(sys.stderr)
    sys.stderr.write("\nThe MCP server itself (media-mcp serve) is not built yet; run 'media-mcp library'.\n")
    return 2
