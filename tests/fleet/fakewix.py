"""A recording fake of Wix: the embedded library in a process of its own, behind a counting proxy that says 429.

``media-mcp library`` speaks Wix's REST API (same paths, JSON and errors). In front of it, `CountingProxy` (uvicorn
in a process of its own, on 127.0.0.1, so the stamps it takes do not wait on the test's own work) passes every
request on and records when each request to the ``/site-media/v1`` API arrived. Like Wix, which allows an app
instance 200 requests a minute, it answers 429 with a Wix error body (and no ``Retry-After``: Wix documents none),
without passing the request on, to any API request that finds more than ``limit`` requests (itself included, and
the refused ones too: they reached Wix) in the trailing ``window`` seconds.

Replicas reach this Wix at ``MEDIA_MCP_WIX_API_URL`` = the proxy's URL with the library's API key and site id
(`FakeWix.wix_environment`). Links the library mints (uploads, downloads) point at the library's own port, not the
proxy: the proxy sends the library its own Host, as Wix's links point at Wix's static and upload hosts, not at the
REST API.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import secrets
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from tests.fleet.processes import HOST, Child, clean_environment, media_mcp_command

API = "/site-media/v1"
CONTROL = "/_fake/"
"""The proxy's own paths: what it recorded, and a reset."""
JSON = [(b"content-type", b"application/json")]
ROOT = Path(__file__).resolve().parents[2]
LIBRARY_READY = re.compile(r"serving the Wix Media REST API at (http://127\.0\.0\.1:\d+)/site-media/v1")
PROXY_READY = re.compile(r"fake Wix: counting proxy at (http://127\.0\.0\.1:\d+)")
RATE_LIMITED_BODY = {
    "message": "Rate limit exceeded: too many requests for this app instance",
    "details": {
        "applicationError": {
            "code": "RESOURCE_EXHAUSTED",
            "description": "Rate limit exceeded: too many requests for this app instance",
            "data": {},
        }
    },
}
"""What the fake answers with a 429: Wix's error body (``details.applicationError``)."""
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host",
     "content-length"}
)  # fmt: skip
_DECODED = _HOP_BY_HOP | {"content-encoding"}
"""httpx decodes answers, so their encoding header is not passed on either."""
_ID = re.compile(r"/([^/]*[0-9][^/]*|[a-z-]+-root)$")
"""A path's last segment when it is an id (a system folder's too): counted as ``{id}``."""


def max_in_window(stamps: list[float], window: float) -> int:
    """The most stamps (sorted) in any trailing window ``(t - window, t]``."""
    best = first = 0
    for last, stamp in enumerate(stamps):
        while stamp - stamps[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


class RateWindow:
    """When each API request arrived, and whether it was within the limit: more than ``limit`` in the trailing
    ``window`` seconds (counting the new one) is a 429. ``limit`` None records only."""

    def __init__(self, limit: int | None, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.stamps: list[float] = []
        self.refused: list[float] = []
        self.routes: Counter[str] = Counter()
        self.failures = 0
        """Requests the upstream (the library) could not answer: a 502 from the proxy."""
        self.failure_reasons: list[str] = []
        """Each failure's request and error, to say in a test's message what the upstream did."""
        self._lock = threading.Lock()

    def arrive(self, method: str, path: str) -> bool:
        """Record a request; False if it is over the limit (then it is answered 429)."""
        with self._lock:
            now = self.clock()
            self.stamps.append(now)
            self.routes[f"{method} {_ID.sub('/{id}', path)}"] += 1
            trailing = len(self.stamps) - bisect.bisect_right(self.stamps, now - self.window)
            if self.limit is not None and trailing > self.limit:
                self.refused.append(now)
                return False
            return True

    def fail(self, reason: str) -> None:
        """Record a request the upstream could not answer."""
        with self._lock:
            self.failures += 1
            self.failure_reasons.append(reason)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.stamps)

    @property
    def rate_limited(self) -> int:
        """How many 429s it answered."""
        with self._lock:
            return len(self.refused)

    def max_in_window(self, window: float | None = None) -> int:
        """The most requests in any trailing ``window`` (default: its own)."""
        with self._lock:
            stamps = list(self.stamps)
        return max_in_window(stamps, self.window if window is None else window)

    def tightest_span(self, count: int | None = None) -> float | None:
        """The shortest time in which ``count`` + 1 requests (default: one past the limit) arrived; a limit is held
        when this is at least the window. None when fewer requests arrived."""
        n = self.limit if count is None else count
        with self._lock:
            stamps = list(self.stamps)
        if n is None or len(stamps) <= n:
            return None
        return min(stamps[i + n] - stamps[i] for i in range(len(stamps) - n))

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {"limit": self.limit, "window": self.window, "stamps": list(self.stamps),
                    "refused": list(self.refused), "routes": dict(self.routes), "failures": self.failures,
                    "failure_reasons": list(self.failure_reasons)}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RateWindow:
        """A copy of a record (`to_json`), to read figures from."""
        rate = cls(data["limit"], data["window"])
        rate.stamps, rate.refused, rate.routes = list(data["stamps"]), list(data["refused"]), Counter(data["routes"])
        rate.failures, rate.failure_reasons = data["failures"], list(data["failure_reasons"])
        return rate

    def reset(self) -> None:
        with self._lock:
            self.stamps.clear()
            self.refused.clear()
            self.routes.clear()
            self.failures = 0
            self.failure_reasons.clear()


class CountingProxy:
    """An ASGI reverse proxy to ``upstream`` (a URL, or an httpx transport) that counts API requests in ``rate``
    and answers 429 as Wix does past its limit. ``GET /_fake/record`` answers what it recorded (`RateWindow.to_json`)
    and ``POST /_fake/reset`` forgets it; neither is passed on nor counted."""

    def __init__(self, upstream: str | httpx.AsyncBaseTransport, rate: RateWindow) -> None:
        self.upstream = upstream
        self.rate = rate
        self._client: httpx.AsyncClient | None = None

    def _make_client(self) -> httpx.AsyncClient:
        # connections idle for less than uvicorn's keep-alive timeout (5 s, the library's): with httpx's default of
        # 5 s too, a request could go out on a connection the library was closing at that moment, and fail
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=2.0)
        if isinstance(self.upstream, str):
            return httpx.AsyncClient(base_url=self.upstream, timeout=60.0, trust_env=False, limits=limits)
        return httpx.AsyncClient(transport=self.upstream, base_url="http://library.upstream", timeout=60.0)

    async def aclose(self) -> None:
        """Close the client to the upstream (done at the end of the ASGI lifespan, when one runs)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if self._client is None:  # served without a lifespan (httpx.ASGITransport)
            self._client = self._make_client()
        path: str = scope["path"]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if path.startswith(CONTROL):
            await self._control(scope["method"], path, send)
            return
        if path.startswith(API) and not self.rate.arrive(scope["method"], path[len(API) :]):
            await _answer(send, 429, JSON, json.dumps(RATE_LIMITED_BODY).encode())
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            reply = await self._client.request(
                scope["method"],
                path + (f"?{query}" if query else ""),
                headers=[(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP],
                content=body,
            )
        except httpx.HTTPError as exc:
            self.rate.fail(f"{scope['method']} {path}: {type(exc).__name__}: {exc}")
            await _answer(send, 502, [(b"content-type", b"text/plain")], f"upstream: {type(exc).__name__}".encode())
            return
        out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.multi_items()]
        await _answer(send, reply.status_code, [(k, v) for k, v in out if k.decode().lower() not in _DECODED],
                      reply.content)  # fmt: skip

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._client = self._make_client()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _control(self, method: str, path: str, send: Any) -> None:
        if (method, path) == ("GET", f"{CONTROL}record"):
            await _answer(send, 200, JSON, json.dumps(self.rate.to_json()).encode())
        elif (method, path) == ("POST", f"{CONTROL}reset"):
            self.rate.reset()
            await _answer(send, 200, JSON, b"{}")
        else:
            await _answer(send, 404, JSON, b'{"message": "no such control"}')


async def _answer(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve_proxy(argv: list[str] | None = None) -> int:
    """``python -m tests.fleet.fakewix --upstream URL [--limit N] [--window S]``: the proxy in a process of its own,
    on 127.0.0.1 at a port the system chooses, which it prints (`PROXY_READY`)."""
    parser = argparse.ArgumentParser(prog="python -m tests.fleet.fakewix", description=__doc__)
    parser.add_argument("--upstream", required=True, help="the library's base URL")
    parser.add_argument("--limit", type=int, help="requests allowed in any trailing window (default: no limit)")
    parser.add_argument("--window", type=float, default=60.0, help="the window in seconds (default 60)")
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # so asyncio sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(2048)  # connections queue from here on, before uvicorn accepts them
    proxy = CountingProxy(args.upstream, RateWindow(args.limit, args.window))
    config = uvicorn.Config(proxy, log_level="warning", lifespan="on", server_header=False, timeout_graceful_shutdown=2)
    print(f"fake Wix: counting proxy at http://{HOST}:{sock.getsockname()[1]} for {args.upstream}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    sock.close()
    return 0


class LibraryProcess:
    """``media-mcp library`` on 127.0.0.1 (a port the system chooses) with an API key of our own."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.api_key = secrets.token_urlsafe(24)
        env = clean_environment(work / "home", {"MEDIA_MCP_LIBRARY_API_KEY": self.api_key})
        argv = [*media_mcp_command(), "library", "--host", HOST, "--port", "0", "--data-dir", str(work / "data")]
        self.child = Child("library", argv, env, work / "library.log", work)
        self.url = ""
        self.site_id = ""

    def start(self) -> None:
        self.child.start()
        self.url = self.child.wait_for(LIBRARY_READY).group(1)
        self.site_id = self.get("/folders/media-root")["folder"]["siteId"]

    def stop(self) -> None:
        self.child.stop()

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One REST call straight to the library (not through the proxy: it is not counted)."""
        with httpx.Client(timeout=30.0, trust_env=False) as http:
            reply = http.request(method, f"{self.url}{API}{path}", headers={"Authorization": self.api_key}, **kwargs)
        if reply.status_code != 200:
            raise RuntimeError(f"{method} {path} answered {reply.status_code}: {reply.text[:300]}")
        body: dict[str, Any] = reply.json()
        return body

    def get(self, path: str) -> dict[str, Any]:
        return self.call("GET", path)

    def create_folder(self, name: str, parent: str = "media-root") -> str:
        folder_id: str = self.call("POST", "/folders", json={"displayName": name, "parentFolderId": parent})["folder"][
            "id"
        ]
        return folder_id

    def upload(self, name: str, data: bytes, mime: str, parent: str = "media-root") -> str:
        """A file through a minted upload URL; its id."""
        minted = self.call(
            "POST", "/files/generate-upload-url", json={"mimeType": mime, "fileName": name, "parentFolderId": parent}
        )
        with httpx.Client(timeout=30.0, trust_env=False) as http:
            stored = http.put(minted["uploadUrl"], content=data, headers={"Content-Type": mime})
        if stored.status_code != 200:
            raise RuntimeError(f"uploading {name} answered {stored.status_code}: {stored.text[:300]}")
        file_id: str = stored.json()["file"]["id"]
        return file_id


@dataclass
class FakeWix:
    """The library process and the counting proxy process in front of it; a context manager."""

    work: Path
    limit: int | None
    window: float

    def __post_init__(self) -> None:
        self.library = LibraryProcess(self.work)
        self.proxy: Child | None = None
        self.url = ""
        """The proxy's base URL: the Wix API URL replicas are given."""

    def __enter__(self) -> FakeWix:
        self.work.mkdir(parents=True, exist_ok=True)
        self.library.start()
        try:
            argv = [
                sys.executable,
                "-m",
                "tests.fleet.fakewix",
                "--upstream",
                self.library.url,
                "--window",
                f"{self.window!r}",
                *(["--limit", str(self.limit)] if self.limit is not None else []),
            ]
            pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
            env = clean_environment(self.work / "home", {"PYTHONPATH": pythonpath})
            self.proxy = Child("fake-wix-proxy", argv, env, self.work / "proxy.log", self.work)
            self.proxy.start()
            self.url = self.proxy.wait_for(PROXY_READY).group(1)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        self.library.stop()

    def wix_environment(self) -> Mapping[str, str]:
        """What a replica needs to reach this Wix: its API URL, the API key and the site id."""
        return {
            "MEDIA_MCP_WIX_API_URL": self.url,
            "WIX_API_KEY": self.library.api_key,
            "WIX_SITE_ID": self.library.site_id,
        }

    def record(self) -> RateWindow:
        """What the proxy recorded so far (a copy)."""
        with httpx.Client(timeout=30.0, trust_env=False) as http:
            reply = http.get(f"{self.url}{CONTROL}record")
        reply.raise_for_status()
        return RateWindow.from_json(reply.json())

    def reset(self) -> None:
        """Forget what the proxy recorded."""
        with httpx.Client(timeout=30.0, trust_env=False) as http:
            http.post(f"{self.url}{CONTROL}reset").raise_for_status()


if __name__ == "__main__":
    sys.exit(serve_proxy())
