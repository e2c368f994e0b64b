"""The baseline of ``python -m bench mcp``: a bare MCP SDK server with one echo tool.

Started the way media-mcp is (``python -m bench.echo_server`` next to ``python -m media_mcp``), served over
stdio by the same SDK call (``run_stdio_async`` under ``anyio.run``), with the same log level. It imports
nothing of media-mcp, so its start-up is the SDK's alone.

With ``--collector-paused`` it starts as media-mcp does (`media_mcp.cli.main`): Python's cycle collector paused
from the first import until the server is built, then the objects made so far frozen. The cold start of this
variant is the SDK's start with the same pause, against which media-mcp's own share of its start shows.
"""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer


def build() -> MCPServer:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("echo", log_level="WARNING")

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    return server


def main(argv: list[str]) -> None:
    paused = "--collector-paused" in argv
    if paused:
        gc.disable()
    server = build()
    if paused:
        gc.freeze()
        gc.enable()
    server.run()


if __name__ == "__main__":
    main(sys.argv[1:])
