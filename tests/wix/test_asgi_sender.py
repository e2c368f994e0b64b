"""`AppSender`: the in-process path the local backend uses must deliver what a socket would, and fail the same way."""

from __future__ import annotations

import json
import random
from typing import Any

import anyio
import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from media_mcp import errors
from media_mcp.wix.asgi import AppSender
from media_mcp.wix.auth import ApiKeyAuth
from media_mcp.wix.client import WixMediaClient
from media_mcp.wix.resilience import RetryPolicy

pytestmark = pytest.mark.anyio


async def mirror(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with what it was sent: method, path, query, headers and body."""
    message = await receive()
    echo = {
        "method": scope["method"],
        "scheme": scope["scheme"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].split(b"?")[0].decode(),  # httpx's transport passes the query in it too
        "query": scope["query_string"].decode(),
        "headers": {k.decode(): v.decode() for k, v in scope["headers"] if k != b"user-agent"},
        "body": message.get("body", b"").decode(),
        "server": list(scope["server"]),
    }
    body = json.dumps(echo).encode()
    headers = [(b"content-type", b"application/json"), (b"retry-after", b"7"), (b"x-multi", b"a"), (b"x-multi", b"b")]
    await send({"type": "http.response.start", "status": 418, "headers": headers})
    await send({"type": "http.response.body", "body": body[:10], "more_body": True})
    await send({"type": "http.response.body", "body": body[10:]})


CASES: list[dict[str, Any]] = [
    {"method": "GET", "url": "http://library.test:8123/site-media/v1/files/get-file-by-id?fileId=a%2Fb"},
    {
        "method": "GET",
        "url": "http://library.test/site-media/v1/files",
        "params": [("mediaTypes", "IMAGE"), ("mediaTypes", "VIDEO"), ("paging.cursor", "x y&z=é")],
    },
    {"method": "POST", "url": "https://library.test/site-media/v1/files/search", "json": {"search": "café ☕", "n": 1}},
    {"method": "PATCH", "url": "http://library.test/x", "params": [("b", "2")], "json": {}},
    {"method": "GET", "url": "http://library.test/site-media/v1/folders/a%20b%2Fc%C3%A9"},
]


@pytest.mark.parametrize(
    "case", CASES, ids=["query-in-url", "repeated-params", "json-https", "params-and-json", "escaped-path"]
)
async def test_the_app_sees_and_answers_what_httpx_would_deliver(case: dict[str, Any]) -> None:
    headers = {"Authorization": "secret-key", "wix-site-id": "site"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mirror)) as http:
        expected = await http.request(case["method"], case["url"], params=case.get("params"), json=case.get("json"),
                                      headers=headers)  # fmt: skip
    got = await AppSender(mirror)(
        case["method"], case["url"], params=case.get("params"), json=case.get("json"), headers=headers
    )
    seen, wanted = got.json(), expected.json()
    for name in ("accept", "accept-encoding", "connection"):  # httpx's own defaults, not the adapter's
        wanted["headers"].pop(name, None)
    if case.get("json") is not None:  # same document; httpx spaces it differently
        assert json.loads(seen["body"]) == json.loads(wanted["body"])
        assert seen["headers"].pop("content-length") == str(len(seen["body"].encode()))
        wanted["headers"].pop("content-length")
        seen["body"] = wanted["body"] = ""
    # the port a socket would have been on; httpx's ASGI transport leaves out default ones
    port = httpx.URL(case["url"]).port or (443 if case["url"].startswith("https") else 80)
    assert seen.pop("server") == [wanted.pop("server")[0], port]
    assert seen == wanted
    assert got.status_code == expected.status_code == 418
    assert got.headers.get_list("x-multi") == ["a", "b"]
    assert got.headers["retry-after"] == "7"


def _app(handler: Any) -> Starlette:
    async def unexpected(request: Request, exc: Exception) -> Response:
        return JSONResponse({"message": "boom", "details": {"applicationError": {"code": "INTERNAL"}}}, 500)

    return Starlette(routes=[Route("/{path:path}", handler, methods=["POST", "GET"])],
                     exception_handlers={Exception: unexpected})  # fmt: skip


async def _no_wait(seconds: float) -> None:
    return None


def _client(app: Any, **kwargs: Any) -> WixMediaClient:
    policy = RetryPolicy(attempts=3, rng=random.Random(3), budget=kwargs.pop("budget", 60.0))
    return WixMediaClient("http://library.test", ApiKeyAuth(SecretStr("k"), "s"), sender=AppSender(app),
                          retry=policy, sleep=_no_wait, **kwargs)  # fmt: skip


async def test_an_app_that_fails_after_answering_passes_its_500_on() -> None:
    calls = 0

    async def broken(request: Request) -> Response:
        nonlocal calls
        calls += 1
        raise RuntimeError("a bug in the library")

    async with _client(_app(broken)) as wix:
        with pytest.raises(errors.Unavailable) as caught:
            await wix.search_folders()
        assert caught.value.status == 500 and caught.value.code == "INTERNAL"
        assert calls == 3  # a read: repeated, like any 500
        with pytest.raises(errors.MediaError) as write:
            await wix.create_folder("x")
        assert write.value.code == "OUTCOME_UNKNOWN" and calls == 4  # a write that may have happened: not repeated


async def test_an_app_that_dies_without_answering_is_a_transport_failure() -> None:
    async def dies(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("gone before a word")

    with pytest.raises(httpx.RemoteProtocolError):
        await AppSender(dies)("GET", "http://library.test/site-media/v1/folders")
    async with _client(dies) as wix:
        with pytest.raises(errors.Unavailable) as caught:
            await wix.search_folders()
        assert caught.value.code == "TRANSPORT"
        with pytest.raises(errors.MediaError) as write:
            await wix.create_folder("x")
        assert write.value.code == "OUTCOME_UNKNOWN"


class Stalls:
    """An app that waits for ``go`` before it ends, counting the requests it began and the ones it ended."""

    def __init__(self) -> None:
        self.go = anyio.Event()
        self.entered = self.finished = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.entered += 1
        await self.go.wait()
        self.finished += 1


async def test_a_stalled_write_is_given_up_at_the_timeout_but_runs_to_its_end() -> None:
    stalls = Stalls()
    sender = AppSender(stalls)
    with anyio.fail_after(10):  # the test's own bound: the sender must give up long before this
        with pytest.raises(httpx.ReadTimeout):
            await sender("POST", "http://library.test/site-media/v1/folders", json={}, timeout=0.05)
        assert (stalls.entered, stalls.finished) == (1, 0)
        stalls.go.set()  # a socket server would finish the request too, after its client gave up
        await sender.aclose(grace=5)
    assert stalls.finished == 1


async def test_a_stalled_read_is_cut_short_at_the_timeout() -> None:
    stalls = Stalls()  # never told to go on
    sender = AppSender(stalls)
    policy = RetryPolicy(attempts=3, rng=random.Random(3), budget=0.2)
    wix = WixMediaClient("http://library.test", ApiKeyAuth(SecretStr("k"), "s"), sender=sender, retry=policy,
                         sleep=_no_wait)  # fmt: skip
    with anyio.fail_after(10):
        with pytest.raises(errors.Unavailable) as caught:
            await wix.search_folders()  # a read: it runs in the caller's task and is simply stopped
    assert caught.value.code == "TIMEOUT"
    assert stalls.entered >= 1 and stalls.finished == 0  # cut short, not left running


async def test_an_app_that_never_starts_its_answer_is_a_transport_failure() -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

    with pytest.raises(httpx.RemoteProtocolError, match="without answering"):
        await AppSender(silent)("POST", "http://library.test/site-media/v1/folders", json={})


async def test_the_answer_returns_at_once_and_work_after_it_runs_on() -> None:
    go, finished = anyio.Event(), anyio.Event()

    async def answers_then_works(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        await go.wait()  # a background job (an import's download) that outlasts the call
        finished.set()

    sender = AppSender(answers_then_works)
    with anyio.fail_after(10):
        reply = await sender("POST", "http://library.test/x", json={}, timeout=0.05)
        assert reply.status_code == 200 and not finished.is_set()
        go.set()
        await finished.wait()
        await sender.aclose()


async def test_a_caller_that_is_cancelled_does_not_cut_the_request_short() -> None:
    started, go, done = anyio.Event(), anyio.Event(), anyio.Event()

    async def writes(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        started.set()
        await go.wait()
        done.set()  # the write happens, as it would on a server whose client hung up
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    sender = AppSender(writes)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                await sender("POST", "http://library.test/folders", json={"displayName": "x"})

            tg.start_soon(call)
            await started.wait()
            tg.cancel_scope.cancel()
        go.set()
        await done.wait()
        await sender.aclose()
