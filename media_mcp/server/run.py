"""Serving MCP over streamable HTTP (the app in front, its checks) and the start-up banner.

Which backend serves the media is the entry layer's choice (`media_mcp.backends`); this module only knows its kind.

Every HTTP bind gets Host/Origin (DNS-rebinding) checks derived from what it binds, made by `Front` on every path but
``GET /healthz``. The SDK's own check switches itself on only for three exact ``host`` spellings and compares strings
(case-sensitive, any port), so it is switched off and `Front` is the one place that decides.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from media_mcp.settings import ServerSettings

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

logger = logging.getLogger(__name__)

Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The default loopback binds (``localhost`` binds 127.0.0.1): the only binds that may serve without a token.
DEFAULT_LOOPBACK: tuple[Address, ...] = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))
#: What binds other than loopback accept besides the configured hosts, on any port (NAT, port mapping, tunnels).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ALLOWED_HOSTS_SETTING = "MEDIA_MCP_HTTP_ALLOWED_HOSTS / --allowed-host"

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_PORT = re.compile(r"[0-9]{1,5}")
_DEFAULT_PORT = {"http": 80, "https": 443}


class StartupError(Exception):
    """A setting or argument that keeps the server from starting; the message says what to fix."""


def _address_key(address: Address) -> str:
    """An address as hosts are compared: its canonical text, an IPv4-mapped IPv6 address as the IPv4 it maps."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def host_key(text: str) -> str | None:
    """The canonical form of a host without its port, or None if it is not one.

    ``[v6]`` and IPv4 literals become the address's canonical text (``[0:0::1]`` → ``::1``, ``[::ffff:127.0.0.1]`` →
    ``127.0.0.1``); a DNS name is compared in lower case without its one trailing dot (``LocalHost.`` → ``localhost``).
    """
    if not text.isascii():
        return None
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1]
        if "%" in inner:  # a zone id names an interface of the client, not this server
            return None
        try:
            return _address_key(ipaddress.IPv6Address(inner))
        except ValueError:
            return None
    name = text.lower()
    if name.endswith("."):
        name = name[:-1]
    try:
        return _address_key(ipaddress.IPv4Address(name))
    except ValueError:
        pass
    return name if len(name) <= 253 and _NAME.fullmatch(name) else None


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header value (or an Origin's authority) as (host key, port or None when absent); None if malformed."""
    if not value.isascii():
        return None
    if value.startswith("["):
        end = value.find("]") + 1
        host, rest = value[:end], value[end:]
    else:  # a name or an IPv4 literal: a colon can only start the port
        host, colon, port = value.partition(":")
        rest = colon + port
    key = host_key(host) if host else None
    if key is None:
        return None
    if not rest:
        return key, None
    if rest[0] != ":" or not _PORT.fullmatch(rest[1:]):
        return None
    number = int(rest[1:])
    return (key, number) if 0 < number < 65536 else None


@dataclass(frozen=True)
class AllowedHosts:
    """The hosts a bind answers for: (host key, port it must carry, or None for any port)."""

    entries: frozenset[tuple[str, int | None]]

    def allows(self, key: str, port: int) -> bool:
        return any(key == host and allowed in (None, port) for host, allowed in self.entries)

    def host_ok(self, value: str) -> bool:
        """A Host header value; one without a port means port 80 (this server speaks plain HTTP)."""
        parsed = split_host(value)
        return parsed is not None and self.allows(parsed[0], 80 if parsed[1] is None else parsed[1])

    def origin_ok(self, value: str) -> bool:
        """An Origin header value: ``http`` or ``https`` and an allowed host (``null`` and anything else is not)."""
        scheme, sep, authority = value.partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in _DEFAULT_PORT:
            return False
        parsed = split_host(authority)
        return parsed is not None and self.allows(parsed[0], _DEFAULT_PORT[scheme] if parsed[1] is None else parsed[1])


@dataclass(frozen=True)
class Bind:
    """What ``--host`` binds: ``address`` (None for a host name other than localhost) and the text for the socket."""

    host: str
    socket_host: str
    address: Address | None

    @property
    def default_loopback(self) -> bool:
        return self.address in DEFAULT_LOOPBACK

    @property
    def loopback(self) -> bool:
        return self.address is not None and self.address.is_loopback


def parse_bind(host: str) -> Bind:
    """``--host`` as bound: brackets dropped, ``localhost`` as 127.0.0.1 (what uvicorn binds for it), IPv4-mapped
    IPv6 as the IPv4 address it reaches. Raises `StartupError` for anything that is neither address nor name."""
    text = host.strip()
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        address: Address = ipaddress.ip_address(inner)
    except ValueError:
        key = host_key(inner)
        if key is None:
            raise StartupError(f"--host {host!r} is neither an IP address nor a host name") from None
        if key == "localhost":
            return Bind(host, inner, ipaddress.IPv4Address("127.0.0.1"))
        return Bind(host, inner, None)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return Bind(host, inner, address)


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds a loopback address (any of 127.0.0.0/8 or ::1, in any spelling, or localhost)."""
    try:
        return parse_bind(host).loopback
    except StartupError:
        return False


def is_default_loopback(host: str) -> bool:
    """Whether ``host`` is the default loopback bind (127.0.0.1, ::1 or localhost, in any spelling)."""
    try:
        return parse_bind(host).default_loopback
    except StartupError:
        return False


def _configured(entry: str) -> tuple[str, int | None]:
    """One configured allowed host: ``name``, ``name:port`` or ``name:*`` (``[v6]`` for IPv6); no port is any port."""
    text = entry.strip()
    any_port = text.endswith(":*")
    if any_port:
        text = text[:-2]
    if text.count(":") > 1 and not text.startswith("["):
        text = f"[{text}]"  # a bare IPv6 address
    parsed = split_host(text)
    if parsed is None or (any_port and parsed[1] is not None):
        raise StartupError(
            f"allowed host {entry!r} ({ALLOWED_HOSTS_SETTING}) is not a host name or IP address, optionally with "
            "':port' or ':*' (IPv6 in brackets)"
        )
    return parsed


def allowed_hosts_for(bind: Bind, port: int | None, configured: list[str]) -> AllowedHosts:
    """The hosts a bind answers for. A loopback bind: its own address with ``port`` (any port if None), and
    ``localhost`` when that reaches it (127.0.0.1 or ::1); any other bind (wildcard, LAN address, host name): the
    loopback names on any port. Every bind adds the configured hosts."""
    entries: set[tuple[str, int | None]] = {_configured(entry) for entry in configured}
    if bind.address is not None and bind.address.is_loopback:
        entries.add((_address_key(bind.address), port))
        if bind.default_loopback:
            entries.add(("localhost", port))
    else:
        entries.update((name, None) for name in LOOPBACK_NAMES)
    return AllowedHosts(frozenset(entries))


def client_command(argv: Sequence[str], executable: str) -> list[str]:
    """The command that starts this server again as it was started, absolute: a client runs it without a shell, so
    without the PATH or virtualenv of the terminal it was tried in. The ``media-mcp`` script when that is what ran,
    else the interpreter with ``-m media_mcp``; the same arguments after it."""
    script = Path(argv[0]) if argv and argv[0] else None
    if script is not None and script.name.startswith("media-mcp") and script.is_file():
        return [os.path.abspath(script), *argv[1:]]
    return [os.path.abspath(executable), "-m", "media_mcp", *argv[1:]]


def _serves(kind: str, data_dir: Path) -> str:
    if kind == "wix":
        return "Wix (your site's Media Manager, through the Wix REST API)"
    return f"the embedded media library (data in {data_dir}; no Wix account needed)"


def _real_site(kind: str) -> str:
    if kind == "wix":
        return ""
    return "media-mcp: to use a real site instead, set WIX_API_KEY and WIX_SITE_ID.\n"


def stdio_banner(kind: str, data_dir: Path, command: list[str], environment: list[str]) -> str:
    """What the server says on stderr when it starts over stdio: what it serves, and how a client config starts it."""
    config: dict[str, Any] = {"command": command[0], "args": command[1:]}
    if environment:
        config["env"] = {name: "<value>" for name in environment}
    lines = [
        f"media-mcp: serving MCP over stdio on {_serves(kind, data_dir)}. Logs go to stderr; stdout carries only "
        "protocol.",
        "media-mcp: a client starts it with this absolute command (a client has neither your shell's PATH nor its "
        f"virtualenv): {shlex.join(command)}",
        f"  Claude Code:  claude mcp add media -- {shlex.join(command)}",
        f'  JSON config (Claude Desktop, Cursor, VS Code...): "media": {json.dumps(config)}',
    ]
    if environment:
        lines.append(
            f'media-mcp: settings read from this environment ({", ".join(environment)}) go in the config\'s "env" '
            "too: a client starts the server with the environment its config gives, not your shell's."
        )
    return "\n".join(lines) + "\n" + _real_site(kind)


def http_banner(kind: str, data_dir: Path, bind: Bind, port: int, token: bool) -> str:
    """What the server says on stderr once it listens over streamable HTTP: the URL clients use, and the token."""
    if bind.address is not None and bind.address.is_unspecified:
        where = f"all addresses, port {port}"
        url = f"http://<host>:{port}/mcp, <host> being a name it answers for ({ALLOWED_HOSTS_SETTING})"
    else:
        shown = f"[{bind.socket_host}]" if ":" in bind.socket_host else bind.socket_host
        where = f"{shown}:{port}"
        url = f"http://{shown}:{port}/mcp"
    if token:
        auth = "every request must carry 'Authorization: Bearer <token>', the token being MEDIA_MCP_HTTP_TOKEN's value"
    else:
        auth = "no token is needed on this loopback bind (set MEDIA_MCP_HTTP_TOKEN to require one)"
    return (
        f"media-mcp: serving MCP over streamable HTTP on {where}, on {_serves(kind, data_dir)}. Logs go to stderr.\n"
        f"media-mcp: clients connect to {url}; {auth}. GET /healthz answers probes.\n" + _real_site(kind)
    )


async def _json(send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"application/json"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_WRONG_HOST = (
    b'{"error":"misdirected_request","error_description":"this server does not answer for that Host '
    b'(MEDIA_MCP_HTTP_ALLOWED_HOSTS / --allowed-host add names)"}'
)
_WRONG_ORIGIN = b'{"error":"forbidden","error_description":"requests from that Origin are not accepted"}'


class Front:
    """In front of the MCP app: answers ``GET /healthz``; on every other request checks Host and Origin against
    ``hosts`` (421 and 403) and then the bearer token, if one is set (401)."""

    def __init__(self, app: Any, token: str | None, hosts: AllowedHosts) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.hosts = hosts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":  # none is served; refused before any check could be skipped
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] == "http":
            if scope["path"] == "/healthz" and scope["method"] in ("GET", "HEAD"):
                await _json(send, 200, b'{"status":"ok","service":"media-mcp"}')
                return
            headers = [(name.lower(), value) for name, value in scope["headers"]]
            refusal = self._rebinding(headers)
            if refusal is not None:
                await _json(send, *refusal)
                return
            if self.token is not None and not self._authorized(headers):
                body = b'{"error":"unauthorized","error_description":"send Authorization: Bearer <token>"}'
                await _json(send, 401, body, [(b"www-authenticate", b"Bearer")])
                return
        await self.app(scope, receive, send)

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """Exactly one Authorization header, of the Bearer scheme (named in any case, as HTTP's schemes are), with the
        token: two headers are refused, whatever each says, since a proxy in front may have read the other one."""
        sent = [value for name, value in headers if name == b"authorization"]
        if len(sent) != 1 or self.token is None:
            return False
        scheme, _, given = sent[0].strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)

    def _rebinding(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes] | None:
        """421 unless there is exactly one Host and it is allowed; 403 for an Origin that is not (absent is fine)."""
        hosts = [value.decode("latin-1") for name, value in headers if name == b"host"]
        if len(hosts) != 1 or not self.hosts.host_ok(hosts[0]):
            logger.warning("refused an HTTP request for Host %r", hosts[0][:200] if hosts else None)
            return 421, _WRONG_HOST
        origins = [value.decode("latin-1") for name, value in headers if name == b"origin"]
        if len(origins) > 1 or (origins and not self.hosts.origin_ok(origins[0])):
            logger.warning("refused an HTTP request from Origin %r", origins[0][:200])
            return 403, _WRONG_ORIGIN
        return None


def http_app(
    mcp: MCPServer,
    settings: ServerSettings,
    host: str,
    stateless: bool,
    allowed_hosts: list[str],
    port: int | None = None,
) -> Any:
    """The streamable HTTP app at /mcp with /healthz, for a server bound to ``host`` and ``port`` (None or 0 when not
    known: any port). Host/Origin checks on every bind; the bearer token is required for all but the default
    loopback bind."""
    from mcp.server.transport_security import TransportSecuritySettings

    token = settings.http_token.get_secret_value() if settings.http_token else None
    bind = parse_bind(host)
    if not token and not bind.default_loopback:
        how = "set MEDIA_MCP_HTTP_TOKEN (clients then send 'Authorization: Bearer <token>')"
        if bind.loopback:
            raise StartupError(f"--host {host} is not the default loopback bind (127.0.0.1, ::1, localhost): {how}")
        raise StartupError(f"binding {host} exposes the server beyond this machine: {how}")
    configured = [*allowed_hosts, *(h for h in settings.http_allowed_hosts.split(",") if h.strip())]
    hosts = allowed_hosts_for(bind, port or None, configured)
    checked_in_front = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = mcp.streamable_http_app(
        stateless_http=stateless,
        transport_security=checked_in_front,
        host=bind.socket_host,
        max_sessions=settings.http_max_sessions,
        session_idle_timeout=settings.http_session_idle_seconds,
    )
    return Front(app, token, hosts)


def log_to_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()
