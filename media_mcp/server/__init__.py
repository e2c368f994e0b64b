"""The MCP server: media tools with guardrails, over stdio and streamable HTTP."""
