"""Import from URL: fetch http(s) only, never from loopback, private, link-local or metadata addresses.

Every hop (the first URL and each redirect) is resolved and checked, and the connection goes to
the address that was checked, so a name that changes its answer between check and use gains
nothing. ``MEDIA_MCP_LIBRARY_ALLOW_PRIVATE_IMPORTS=true`` lifts the address rule (tests use it).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
import anyio.to_thread
import httpx
from starlette.requests import Request

from media_mcp.library.assets import needs_processing
from media_mcp.library.blobs import TooLarge
from media_mcp.library.db import in_thread
from media_mcp.library.errors import invalid
from media_mcp.library.probe import Probe, guess_mime, is_markup, media_type_of, probe, valid_mime
from media_mcp.library.rows import FileRow
from media_mcp.library.service import Library
from media_mcp.wix import messages as msg
from media_mcp.wix import models as m

log = logging.getLogger("media_mcp.library.import")

Resolver = Callable[[str, int], Awaitable[list[str]]]
MAX_REDIRECTS = 5
_HOP_HEADERS = {"host", "connection", "content-length", "transfer-encoding", "upgrade", "te", "trailer"}
_CREDENTIAL_HEADERS = {"authorization", "cookie", "proxy-authorization"}
"""Caller headers that are dropped once a redirect leaves the origin they were given for."""
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class ImportRefused(Exception):
    """The URL may not be fetched (scheme, address or name)."""


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: mapped, 6to4, NAT64 or the old IPv4-compatible form."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _blocked(address: str) -> bool:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(ip)) is not None:
        if _blocked(str(embedded)):
            return True
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


@dataclass
class Guard:
    allow_private: bool
    resolver: Resolver = system_resolver

    async def pin(self, url: httpx.URL) -> str:
        """Check one hop; return the address to connect to."""
        if url.scheme not in ("http", "https"):
            raise ImportRefused(f"only http and https URLs can be imported, not {url.scheme!r}")
        try:
            host = url.host
        except ValueError as exc:  # an IDNA name that does not decode (idna.IDNAError)
            raise ImportRefused(f"the host name is not valid: {exc}") from exc
        if not host:
            raise ImportRefused("the URL has no host")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = await self.resolver(host, port)
        except (OSError, ValueError) as exc:  # ValueError: a name IDNA cannot encode (UnicodeError)
            raise ImportRefused(f"cannot resolve {host!r}") from exc
        if not addresses:
            raise ImportRefused(f"cannot resolve {host!r}")
        if not self.allow_private and any(_blocked(a) for a in addresses):
            raise ImportRefused(
                f"{host!r} resolves to a loopback, private, link-local or otherwise non-public address; "
                "set MEDIA_MCP_LIBRARY_ALLOW_PRIVATE_IMPORTS=true to allow it"
            )
        return addresses[0]

    async def check_url(self, raw: str) -> httpx.URL:
        """Validate the URL of an import request up front (answering 400 if refused)."""
        try:
            url = httpx.URL(raw)
        except (httpx.InvalidURL, ValueError) as exc:
            raise invalid("url", f"not a valid URL: {exc}", rule="FORMAT") from exc
        try:
            await self.pin(url)
        except ImportRefused as exc:
            raise invalid("url", str(exc), code="IMPORT_URL_REFUSED") from exc
        return url


def guard_for(request: Request) -> Guard:
    guard: Guard = request.app.state.import_guard
    return guard


def _name_from(url: httpx.URL, given: str | None) -> str:
    if given:
        return given[:255]
    tail = unquote(urlsplit(str(url)).path.rsplit("/", 1)[-1])
    return (tail or url.host or "imported-file")[:255]


def pending_row(lib: Library, body: msg.ImportFileRequest, url: httpx.URL, parent: str) -> FileRow:
    name = _name_from(url, body.display_name)
    mime = body.mime_type or guess_mime(name) or "application/octet-stream"
    media_type = body.media_type or media_type_of(mime)
    now = lib.clock()
    return FileRow(
        id=lib.new_file_id(media_type, name),
        display_name=name,
        parent_id=parent,
        root="media",
        state="OK",
        private=bool(body.private),
        media_type=media_type.value,
        mime_type=mime,
        size=0,
        hash="",
        blob=None,
        status=m.OperationStatus.PENDING.value,
        created=now,
        updated=now,
        source_url=str(url),
        labels=body.labels or [],
    )


async def settle_stale(lib: Library, rows: list[FileRow]) -> list[FileRow]:
    """The rows, with imports that can no longer finish marked FAILED (see `Library.fail_stale_imports`).

    Only rows of imports still fetching are looked at, so reading files costs nothing more when none is.
    """
    fetching = [r.id for r in rows if r.status == m.OperationStatus.PENDING and r.blob is None]
    if not fetching or not (failed := await in_thread(lib.fail_stale_imports, fetching)):
        return rows
    fresh = await in_thread(lib.catalog.get_files, sorted(failed))
    return [fresh.get(r.id, r) for r in rows]


@dataclass
class ImportJob:
    """Fetches one import in the background and completes (or fails) its file."""

    lib: Library
    guard: Guard
    file_id: str
    url: httpx.URL
    request: msg.ImportFileRequest
    transport: httpx.AsyncBaseTransport | None = None

    async def run(self) -> None:
        try:
            with anyio.fail_after(self.lib.settings.library_import_timeout_seconds):
                await self._fetch()
        except Exception as exc:
            log.warning("import of %s failed: %s", self.file_id, exc)
            await self._fail(self._reason(exc))
        except BaseException:
            # cancelled: the loop that serves the library is stopping, so the import can never finish now
            with anyio.CancelScope(shield=True):
                await self._fail("the library stopped before the import finished")
            raise

    def _reason(self, exc: Exception) -> str:
        """Why the import failed, in words for whoever asked for it; never the URL (it may carry credentials)."""
        if isinstance(exc, ImportRefused):
            return str(exc)
        if isinstance(exc, httpx.HTTPStatusError):
            return f"the source answered HTTP {exc.response.status_code}"
        if isinstance(exc, TimeoutError):
            return f"the source took longer than {self.lib.settings.library_import_timeout_seconds:g} s"
        if isinstance(exc, httpx.TransportError):
            return f"the source could not be reached ({type(exc).__name__})"
        return "the file could not be imported"

    async def _fail(self, reason: str) -> None:
        try:
            await in_thread(self.lib.catalog.fail_import, self.file_id, reason, self.lib.clock())
        except Exception:  # the library is closing: a process opening it later marks the import failed
            log.exception("could not mark the import of %s failed", self.file_id)

    async def _fetch(self) -> None:
        url = self.url
        if self.request.url_params:
            url = url.copy_merge_params({k: str(v) for k, v in self.request.url_params.items()})
        headers = {
            str(k): str(v) for k, v in (self.request.url_headers or {}).items() if str(k).lower() not in _HOP_HEADERS
        }
        timeout = httpx.Timeout(30.0, connect=10.0)
        async with httpx.AsyncClient(transport=self.transport, timeout=timeout, trust_env=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                address = await self.guard.pin(url)
                pinned = url.copy_with(host=address)
                extensions: dict[str, Any] = {"sni_hostname": url.host} if url.scheme == "https" else {}
                request = client.build_request(
                    "GET", pinned, headers={**headers, "Host": url.netloc.decode()}, extensions=extensions
                )
                response = await client.send(request, stream=True)
                try:
                    if response.is_redirect:
                        location = response.headers.get("location", "")
                        target = url.join(location)
                        if (target.scheme, target.raw_host, target.port) != (url.scheme, url.raw_host, url.port):
                            headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
                        url = target
                        continue
                    response.raise_for_status()
                    await self._store(response)
                    return
                finally:
                    await response.aclose()
            raise ImportRefused(f"more than {MAX_REDIRECTS} redirects")

    async def _store(self, response: httpx.Response) -> None:
        lib = self.lib
        try:
            received = await lib.blobs.receive(response.aiter_bytes(), lib.settings.library_max_file_bytes)
        except TooLarge as exc:
            raise ImportRefused("the file is larger than the library accepts") from exc
        if received.size == 0:
            received.path.unlink(missing_ok=True)
            raise ImportRefused("the URL answered an empty body")
        row = await in_thread(lib.catalog.get_file, self.file_id)
        if row is None:  # deleted for good while it was being fetched
            received.path.unlink(missing_ok=True)
            return
        remote = response.headers.get("content-type", "").split(";")[0].strip()
        declared = self.request.mime_type or (remote if valid_mime(remote) else "")
        found = await anyio.to_thread.run_sync(probe, received.path, received.head, declared, row.display_name)
        # decided on the content, against what the import asked for (its mime type, else its name), as an upload
        # is against what its link was minted for: markup is never stored under a type that is not markup
        requested = self.request.mime_type or guess_mime(row.display_name) or "application/octet-stream"
        if is_markup(found.mime_type):
            if not is_markup(requested):
                received.path.unlink(missing_ok=True)
                raise ImportRefused(f"the content is {found.mime_type} (markup a browser may run), not {requested}")
            found = Probe(media_type=media_type_of(requested), mime_type=requested)
        key = lib.blobs.commit(received)
        # stored: a file that needs processing stays PENDING until the processor is done with it
        processed = needs_processing(found.media_type, found.mime_type)
        status = m.OperationStatus.PENDING if processed else m.OperationStatus.READY
        try:
            completed = await in_thread(
                lib.catalog.complete_import,
                self.file_id,
                status=status.value,
                hash=received.md5,
                size=received.size,
                blob=key,
                media_type=found.media_type.value,
                mime_type=found.mime_type,
                width=found.width,
                height=found.height,
                updated=lib.clock(),
            )
        except BaseException:
            lib.blobs.discard(key)
            raise
        if not completed:  # failed meanwhile (a sibling judged it stale) or deleted: the bytes are nobody's
            lib.blobs.discard(key)
            return
        if processed:
            lib.processor.submit(self.file_id)
