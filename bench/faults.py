"""Fault injection in front of the library: a seeded share of requests goes wrong, and every fault is counted.

Kinds (`Fault`): ``429`` with ``Retry-After``, ``500``, ``503``, a stall past the client's read timeout, and a
dropped connection either before the request reaches the library or after the library has processed it (the
answer is lost: the case that makes "no write happens twice" mean something).

Two ways in, sharing one `FaultInjector` (the plan, the random stream and the counts):

* `FaultTransport`: an ``httpx`` transport wrapping another (``httpx.ASGITransport`` over the library app, for
  tests): no sockets, no sleeping. A stall is modelled as ``httpx.ReadTimeout`` (after the library answered, or
  before it saw the request); a drop as the ``RemoteProtocolError`` a closed keep-alive connection gives.
* `FaultProxy`: an HTTP/1.1 proxy on 127.0.0.1 in its own thread, in front of a library URL: real connection
  drops, real stalls (``stall_seconds``, longer than the client's read timeout), and canned error answers.
"""

from __future__ import annotations

import random
import socket
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import h11
import httpx


class Fault(StrEnum):
    RATE_LIMITED = "429"
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    TIMEOUT = "timeout"
    DROP_BEFORE = "drop_before"
    DROP_AFTER = "drop_after"


ANSWERED = {Fault.RATE_LIMITED: 429, Fault.SERVER_ERROR: 500, Fault.UNAVAILABLE: 503}
"""Faults answered with an error status, without the library seeing the request."""
_CODES = {429: "TOO_MANY_REQUESTS", 500: "INTERNAL_ERROR", 503: "SERVICE_UNAVAILABLE"}
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)
"""Headers the proxy does not pass on (it frames each message itself)."""
_DECODED = _HOP_BY_HOP | {"content-encoding"}
"""Answers are passed on decoded (``httpx`` decodes them), so their encoding header goes too."""
MAX_BODY = 64 * 1024 * 1024
"""The proxy holds a whole request in memory: larger bodies are refused."""


def _default_eligible(method: str, path: str) -> bool:
    return path != "/healthz"


@dataclass
class FaultPlan:
    """What share of requests goes wrong and how, reproducibly (``seed``)."""

    rate: float = 0.2
    seed: int = 0
    weights: dict[Fault, float] = field(default_factory=lambda: dict.fromkeys(Fault, 1.0))
    retry_after: int = 1
    """Seconds a 429 asks the client to wait."""
    timeout_forwards: bool = True
    """A stall happens after the library processed the request (else: before it saw it)."""
    eligible: Callable[[str, str], bool] = _default_eligible
    """Which requests (method, path) may be faulted."""


@dataclass
class Record:
    """One request as the fault layer saw it (the path with long segments, such as link tokens, elided)."""

    method: str
    path: str
    fault: Fault | None
    reached: bool = False


def _elide(path: str) -> str:
    return "/".join(part if len(part) <= 40 else "…" for part in path.split("/"))


class FaultInjector:
    """The decisions and the counts; thread-safe, so a proxy thread and a test can share one."""

    def __init__(self, plan: FaultPlan | None = None, *, keep_log: bool = True) -> None:
        self.plan = plan or FaultPlan()
        self.active = True
        self.keep_log = keep_log
        self._rng = random.Random(self.plan.seed)
        self._kinds = [k for k, w in self.plan.weights.items() if w > 0]
        self._weights = [self.plan.weights[k] for k in self._kinds]
        self._script: deque[Fault | None] = deque()
        self._lock = threading.Lock()
        self.requests = 0
        self.reached = 0
        self.injected: Counter[Fault] = Counter()
        self.log: list[Record] = []

    def script(self, *faults: Fault | None) -> None:
        """Force the next eligible requests' fate (None: pass through), ahead of the random plan."""
        with self._lock:
            self._script.extend(faults)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No random faults inside (scripted ones still apply); requests are still counted."""
        with self._lock:
            before, self.active = self.active, False
        try:
            yield
        finally:
            with self._lock:
                self.active = before

    def decide(self, method: str, path: str) -> Record:
        with self._lock:
            self.requests += 1
            fault: Fault | None = None
            if self.plan.eligible(method, path):
                if self._script:
                    fault = self._script.popleft()
                elif self.active and self._kinds and self._rng.random() < self.plan.rate:
                    fault = self._rng.choices(self._kinds, self._weights)[0]
            if fault is not None:
                self.injected[fault] += 1
            record = Record(method, _elide(path), fault)
            if self.keep_log:
                self.log.append(record)
            return record

    def mark_reached(self, record: Record) -> None:
        with self._lock:
            self.reached += 1
            record.reached = True

    def counts(self) -> dict[str, Any]:
        """Plain numbers: requests seen, requests that reached the library, faults injected by kind."""
        with self._lock:
            return {
                "requests": self.requests,
                "reached_library": self.reached,
                "injected": {kind.value: self.injected[kind] for kind in Fault},
                "injected_total": sum(self.injected.values()),
            }

    def error_body(self, status: int) -> tuple[dict[str, str], bytes]:
        """Headers and a Wix-shaped JSON body for an injected error status."""
        code = _CODES[status]
        body = httpx.Response(
            status, json={"message": code, "details": {"applicationError": {"code": code, "description": code}}}
        ).content
        headers = {"Content-Type": "application/json", "X-Injected-Fault": str(status)}
        if status == 429:
            headers["Retry-After"] = str(self.plan.retry_after)
        return headers, body


def _dropped(request: httpx.Request) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError("Server disconnected without sending a response (injected)", request=request)


class FaultTransport(httpx.AsyncBaseTransport):
    """``httpx`` transport that faults requests before handing them to ``inner``; no sockets, no sleeps.

    ``on_stall`` is told how long a stalled request waited (its read timeout), so a virtual clock can move on.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        injector: FaultInjector,
        *,
        on_stall: Callable[[float], None] | None = None,
    ) -> None:
        self.inner = inner
        self.injector = injector
        self.on_stall = on_stall

    async def _forward(self, request: httpx.Request, record: Record) -> httpx.Response:
        self.injector.mark_reached(record)
        return await self.inner.handle_async_request(request)

    async def _forward_and_lose(self, request: httpx.Request, record: Record) -> None:
        response = await self._forward(request, record)
        try:
            await response.aread()
        finally:
            await response.aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        record = self.injector.decide(request.method, request.url.path)
        fault = record.fault
        if fault is None:
            return await self._forward(request, record)
        if fault in ANSWERED:
            await request.aread()  # a real server answers once the body is in
            headers, body = self.injector.error_body(ANSWERED[fault])
            return httpx.Response(ANSWERED[fault], headers=headers, content=body, request=request)
        if fault is Fault.DROP_BEFORE:
            await request.aread()
            raise _dropped(request)
        if fault is Fault.DROP_AFTER:
            await self._forward_and_lose(request, record)
            raise _dropped(request)
        assert fault is Fault.TIMEOUT
        if self.injector.plan.timeout_forwards:
            await self._forward_and_lose(request, record)
        else:
            await request.aread()
        if self.on_stall is not None:
            timeouts = request.extensions.get("timeout") or {}
            self.on_stall(float(timeouts.get("read") or 0.0))
        raise httpx.ReadTimeout("no answer within the read timeout (injected)", request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class FaultProxy(AbstractContextManager["FaultProxy"]):
    """An HTTP/1.1 proxy on 127.0.0.1, in a thread of its own, faulting requests on their way to ``upstream``.

    ``upstream`` is the library's base URL (or any ``httpx`` transport, e.g. ``ASGITransport``). The client's
    ``Host`` header is passed on, so links the library mints point back through the proxy.
    """

    def __init__(
        self,
        upstream: str | httpx.AsyncBaseTransport,
        injector: FaultInjector,
        *,
        stall_seconds: float = 2.0,
        upstream_timeout: float = 60.0,
    ) -> None:
        self.injector = injector
        self.stall_seconds = stall_seconds
        self._upstream = upstream
        self._upstream_timeout = upstream_timeout
        self.upstream_failures = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._portal_cm: AbstractContextManager[anyio.from_thread.BlockingPortal] | None = None
        self._task: Future[None] | None = None

    def __enter__(self) -> FaultProxy:
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        portal = self._portal_cm.__enter__()
        self._task, _ = portal.start_task(self._serve)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._portal_cm is not None:
            self._portal_cm.__exit__(None, None, None)
        self.sock.close()

    async def _serve(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        if isinstance(self._upstream, str):
            upstream = httpx.AsyncClient(
                base_url=self._upstream, timeout=self._upstream_timeout, trust_env=False,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
            )  # fmt: skip
        else:
            upstream = httpx.AsyncClient(
                transport=self._upstream, base_url="http://library.upstream", timeout=self._upstream_timeout
            )
        async with upstream:
            listener = await anyio.abc.SocketListener.from_socket(self.sock)
            task_status.started()
            await listener.serve(lambda stream: self._connection(stream, upstream))

    async def _connection(self, stream: anyio.abc.ByteStream, upstream: httpx.AsyncClient) -> None:
        async with stream:
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
            while True:
                got = await self._read(conn, stream)
                if got is None:
                    return
                keep = await self._answer(conn, stream, upstream, *got)
                if not keep or conn.our_state is h11.MUST_CLOSE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return

    @staticmethod
    async def _read(conn: h11.Connection, stream: anyio.abc.ByteStream) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        body = bytearray()
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    try:
                        data = await stream.receive(65536)
                    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                        data = b""
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > MAX_BODY:
                        return None
                elif isinstance(event, h11.EndOfMessage) and request is not None:
                    return request, bytes(body)
                else:  # ConnectionClosed, PAUSED
                    return None
        except h11.RemoteProtocolError:
            return None

    async def _answer(
        self,
        conn: h11.Connection,
        stream: anyio.abc.ByteStream,
        upstream: httpx.AsyncClient,
        request: h11.Request,
        body: bytes,
    ) -> bool:
        """Answer one request (or not); False closes the connection."""
        target = request.target.decode("latin-1")
        record = self.injector.decide(request.method.decode("latin-1"), target.split("?", 1)[0])
        fault = record.fault
        if fault in ANSWERED:
            status = ANSWERED[fault]
            fields, content = self.injector.error_body(status)
            return await self._send(
                conn, stream, status, [(k.encode(), v.encode()) for k, v in fields.items()], content
            )
        if fault is Fault.DROP_BEFORE:
            return False
        if fault is Fault.TIMEOUT and not self.injector.plan.timeout_forwards:
            await anyio.sleep(self.stall_seconds)
            return False
        self.injector.mark_reached(record)
        try:
            response = await upstream.request(
                request.method.decode("latin-1"),
                target,
                headers=[(k, v) for k, v in request.headers if k.decode("latin-1").lower() not in _HOP_BY_HOP],
                content=body,
            )
        except httpx.HTTPError:
            self.upstream_failures += 1
            return await self._send(conn, stream, 502, [(b"content-type", b"text/plain")], b"upstream failed")
        if fault is Fault.DROP_AFTER:
            return False
        if fault is Fault.TIMEOUT:
            await anyio.sleep(self.stall_seconds)  # the client has given up by now: the answer is lost
            return False
        headers = [(k, v) for k, v in response.headers.raw if k.decode("latin-1").lower() not in _DECODED]
        return await self._send(conn, stream, response.status_code, headers, response.content)

    @staticmethod
    async def _send(
        conn: h11.Connection,
        stream: anyio.abc.ByteStream,
        status: int,
        headers: Sequence[tuple[bytes, bytes]],
        content: bytes,
    ) -> bool:
        all_headers = [*headers, (b"content-length", str(len(content)).encode())]
        try:
            await stream.send(conn.send(h11.Response(status_code=status, headers=all_headers)) or b"")
            await stream.send(conn.send(h11.Data(data=content)) or b"")
            await stream.send(conn.send(h11.EndOfMessage()) or b"")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, h11.LocalProtocolError):
            return False
        return True
