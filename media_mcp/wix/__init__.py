"""The Wix Media v2 REST shapes and (later) the API adapter."""

from media_mcp.wix import redact as _redact

_redact.install()
