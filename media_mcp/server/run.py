"""Serving MCP over streamable HTTP (the app in front, its checks) and the start-up banner.

Which backend serves the media is the entry layer's choice (`media_mcp.backends`); this module only knows its kind.
"""

from __future__ import annotations

import hmac
import ipaddress
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from media_mcp.settings import ServerSettings

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class StartupError(Exception):
    """A setting or argument that keeps the server from starting; the message says what to fix."""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def banner(kind: str, data_dir: Path, transport: str, where: str) -> str:
    """What the server says on stderr when it starts: transport, backend (its `Backend.kind`) and how to use it."""
    if kind == "wix":
        what = "Wix (your site's Media Manager, through the Wix REST API)"
    else:
        what = f"the embedded media library (data in {data_dir}; no Wix account needed)"
    return (
        f"media-mcp: serving MCP over {transport}{where} on {what}. Add it to a client with the command "
        "'media-mcp' (e.g. `claude mcp add media -- media-mcp`); set WIX_API_KEY and WIX_SITE_ID to use a real "
        "site. Logs go to stderr; stdout carries only protocol.\n"
    )


async def _json(send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"application/json"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Front:
    """In front of the MCP app: answers ``GET /healthz``, and requires the bearer token (if set) elsewhere."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if scope["path"] == "/healthz" and scope["method"] in ("GET", "HEAD"):
                await _json(send, 200, b'{"status":"ok","service":"media-mcp"}')
                return
            sent = dict(scope["headers"]).get(b"authorization", b"")
            if self.expected is not None and not hmac.compare_digest(sent, self.expected):
                body = b'{"error":"unauthorized","error_description":"send Authorization: Bearer <token>"}'
                await _json(send, 401, body, [(b"www-authenticate", b"Bearer")])
                return
        await self.app(scope, receive, send)


def http_app(mcp: MCPServer, settings: ServerSettings, host: str, stateless: bool, allowed_hosts: list[str]) -> Any:
    """The streamable HTTP app at /mcp with /healthz; bearer token required off loopback."""
    from mcp.server.transport_security import TransportSecuritySettings

    token = settings.http_token.get_secret_value() if settings.http_token else None
    if not is_loopback(host) and not token:
        raise StartupError(f"binding {host} exposes the server beyond this machine: set MEDIA_MCP_HTTP_TOKEN")
    security = None
    if not is_loopback(host):
        hosts = [*allowed_hosts, *(h.strip() for h in settings.http_allowed_hosts.split(",") if h.strip())]
        if not hosts:
            hosts = ["localhost:*", "127.0.0.1:*", "[::1]:*"]
            if host not in ("0.0.0.0", "::"):  # noqa: S104 - naming the wildcard, not binding it
                hosts.append(f"{host}:*")
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=hosts,
            allowed_origins=[f"http://{h}" for h in hosts] + [f"https://{h}" for h in hosts],
        )
    app = mcp.streamable_http_app(stateless_http=stateless, transport_security=security, host=host)
    return Front(app, token)


def log_to_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()
