"""REST calls to an ASGI app in the same process, without a socket or a general HTTP client.

The embedded library serves the Wix API as an ASGI app. When it runs in the server's own process,
the adapter hands each JSON call straight to that app: the request still goes through the app's
routing, authentication, validation and error answers, only httpx's client machinery (URL and
cookie handling, redirects, connection pooling) is skipped, which is most of a call's cost.
The answer comes back as an ``httpx.Response``, so the adapter treats it like any other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import anyio
import httpx
import pydantic_core
from starlette.types import ASGIApp, Message

log = logging.getLogger("media_mcp.wix")

QueryParams = list[tuple[str, Any]] | None


class AppSender:
    """Sends one JSON API request to ``app`` and collects its answer, bounded by ``timeout``.

    Each request that may change something runs as a task of its own, the way a server runs a request for a
    socket: the caller waits for the answer only. If the caller gives up (its timeout, or its own cancellation)
    the request still runs to its end, and work the app does after answering (an import's download) goes on
    without holding the caller. Reads run in the caller's task.
    """

    def __init__(self, app: ASGIApp, client: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.app = app
        self.client = client
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: QueryParams = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        reads_only: bool = False,
    ) -> httpx.Response:
        """``reads_only``: the request changes nothing, so it may run in the caller's own task (a step less per
        call); if the caller gives up on it, it is simply cut short."""
        parts = urlsplit(url)
        body = b"" if json is None else pydantic_core.to_json(json)
        raw_headers = [(b"host", parts.netloc.encode("ascii"))]
        if json is not None:
            raw_headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        port = parts.port or (443 if parts.scheme == "https" else 80)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": parts.scheme,
            "path": unquote(parts.path),
            "raw_path": parts.path.encode("ascii"),
            "query_string": "&".join(q for q in (parts.query, urlencode(params or [])) if q).encode("ascii"),
            "root_path": "",
            "headers": raw_headers,
            "server": (parts.hostname or "", port),
            "client": self.client,
        }
        ended = asyncio.Event()  # the answer is complete, or the request ended without one
        request_sent = complete = False
        status: int | None = None
        reply_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def receive() -> Message:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await ended.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status, reply_headers, complete
            if message["type"] == "http.response.start":
                status, reply_headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    complete = True
                    ended.set()

        async def serve() -> None:
            try:
                await self.app(scope, receive, send)
            except Exception:  # noqa: S110 - the app logged it and answered 500 if it could; the caller sees that
                pass
            finally:
                ended.set()

        with anyio.move_on_after(timeout) as limit:
            if reads_only:
                await serve()
            else:
                task = asyncio.get_running_loop().create_task(serve())
                self._running.add(task)
                task.add_done_callback(self._running.discard)
                await ended.wait()
        if status is not None and complete:
            return httpx.Response(status, headers=reply_headers, content=b"".join(chunks))
        if limit.cancelled_caught or not ended.is_set():
            raise httpx.ReadTimeout("the in-process API did not answer in time")
        raise httpx.RemoteProtocolError("the in-process API ended without answering")

    async def aclose(self, grace: float = 5.0) -> None:
        """Wait (at most ``grace`` seconds) for requests still running, then cancel what is left."""
        with anyio.move_on_after(grace):
            while self._running:
                await asyncio.wait(set(self._running))
        for task in list(self._running):
            task.cancel()
