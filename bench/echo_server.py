"""The baseline of ``python -m bench mcp``: a bare MCP SDK server with one echo tool.

Started the way media-mcp is (``python -m bench.echo_server`` next to ``python -m media_mcp``), served over
stdio by the same SDK call (``run_stdio_async`` under ``anyio.run``), with the same log level. It imports
nothing of media-mcp, so its start-up is the SDK's alone.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer


def build() -> MCPServer:
    server = MCPServer("echo", log_level="WARNING")

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    return server


if __name__ == "__main__":
    build().run()
