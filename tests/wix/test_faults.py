"""The adapter under faults, with httpx.MockTransport: retries, budgets, auth refresh, and the request log."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from media_mcp import errors
from media_mcp.wix import messages as msg
from media_mcp.wix import models as m
from media_mcp.wix.auth import ApiKeyAuth, Auth, OAuthAuth
from media_mcp.wix.client import WixMediaClient
from media_mcp.wix.resilience import RateLimiter, RetryPolicy
from tests.conftest import FakeClock

pytestmark = pytest.mark.anyio

BASE = "https://www.wixapis.com"
KEY = "IST.secret-api-key-value"
FILE = {"id": "f1", "displayName": "a.png", "sizeInBytes": "3", "mediaType": "IMAGE", "state": "OK"}
Handler = Callable[[httpx.Request], httpx.Response]


class Harness:
    """A scripted server: each call pops the next answer (a response, or an exception to raise)."""

    def __init__(self, clock: FakeClock) -> None:
        self.requests: list[httpx.Request] = []
        self.script: list[httpx.Response | Exception | Handler] = []
        self.sleeps: list[float] = []
        self.clock = clock

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.script.pop(0) if self.script else httpx.Response(500)
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(request)
        return step

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)

    def client(self, auth: Auth | None = None, **kwargs: object) -> WixMediaClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.handler))
        return WixMediaClient(
            BASE,
            auth or ApiKeyAuth(SecretStr(KEY), "site-1"),
            http=http,
            retry=kwargs.pop("retry", RetryPolicy(rng=random.Random(7))),  # type: ignore[arg-type]
            clock=self.clock,
            sleep=self.sleep,
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture
def harness(clock: FakeClock) -> Harness:
    return Harness(clock)


def ok_file() -> httpx.Response:
    return httpx.Response(200, json={"file": FILE})


def wix_error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"message": code, "details": {"applicationError": {"code": code, "description": code}}}
    return httpx.Response(status, json=body, headers=headers)


async def test_429_with_retry_after_is_honoured(harness: Harness) -> None:
    harness.script = [wix_error(429, "TOO_MANY_REQUESTS", {"Retry-After": "7"}), ok_file()]
    async with harness.client() as wix:
        file = await wix.get_file("f1")
    assert file.id == "f1"
    assert harness.sleeps == [7.0]
    assert len(harness.requests) == 2


async def test_503_twice_then_success_backs_off_with_jitter(harness: Harness) -> None:
    harness.script = [httpx.Response(503), httpx.Response(503, text="<html>down</html>"), ok_file()]
    async with harness.client() as wix:
        assert (await wix.get_file("f1")).display_name == "a.png"
    assert len(harness.requests) == 3
    assert 0.25 <= harness.sleeps[0] <= 0.5
    assert 0.5 <= harness.sleeps[1] <= 1.0


@pytest.mark.parametrize(
    "fault",
    [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("peer closed"), httpx.ReadError("reset by peer")],
)
async def test_transport_faults_on_reads_are_retried(harness: Harness, fault: Exception) -> None:
    harness.script = [fault, ok_file()]
    async with harness.client() as wix:
        assert (await wix.get_file("f1")).id == "f1"
    assert len(harness.requests) == 2


async def test_persistent_timeouts_give_a_clear_retryable_error(harness: Harness) -> None:
    harness.script = [httpx.ReadTimeout("slow") for _ in range(10)]
    async with harness.client() as wix:
        with pytest.raises(errors.Unavailable) as failure:
            await wix.search_files()
    assert failure.value.retryable
    assert failure.value.code == "TIMEOUT"
    assert "search_files" in str(failure.value)
    assert len(harness.requests) == 4


async def test_invalid_json_is_retried_then_reported(harness: Harness) -> None:
    harness.script = [httpx.Response(200, text="{not json"), httpx.Response(200, json={"unexpected": True}), ok_file()]
    async with harness.client() as wix:
        assert (await wix.get_file("f1")).id == "f1"
    harness.script = [httpx.Response(200, text="<html>") for _ in range(4)]
    async with harness.client() as wix:
        with pytest.raises(errors.Unavailable) as bad:
            await wix.get_file("f1")
    assert bad.value.code == "BAD_RESPONSE"


async def test_the_time_budget_bounds_the_retries(harness: Harness) -> None:
    harness.script = [wix_error(429, "SLOW_DOWN", {"Retry-After": "20"}) for _ in range(5)]
    async with harness.client(retry=RetryPolicy(attempts=10, budget=45, rng=random.Random(1))) as wix:
        with pytest.raises(errors.RateLimited) as limited:
            await wix.get_file("f1")
    assert harness.sleeps == [20.0, 20.0]
    assert limited.value.retry_after == 20.0
    assert sum(harness.sleeps) <= 45


async def test_non_idempotent_calls_are_not_repeated_once_sent(harness: Harness) -> None:
    harness.script = [httpx.ReadTimeout("lost the answer")]
    async with harness.client() as wix:
        with pytest.raises(errors.Unavailable) as failure:
            await wix.import_file(msg.ImportFileRequest(url="https://example.com/a.png"))
    assert "import_file" in str(failure.value)
    assert len(harness.requests) == 1
    harness.requests.clear()
    harness.script = [httpx.Response(503)]
    async with harness.client() as wix:
        with pytest.raises(errors.Unavailable):
            await wix.create_folder("once")
    assert len(harness.requests) == 1


async def test_a_create_refused_by_the_rate_limit_is_sent_again_after_retry_after(harness: Harness) -> None:
    folder = {"folder": {"id": "d1", "displayName": "once", "parentFolderId": "media-root", "state": "OK"}}
    harness.script = [wix_error(429, "TOO_MANY_REQUESTS", {"Retry-After": "3"}), httpx.Response(200, json=folder)]
    async with harness.client() as wix:
        assert (await wix.create_folder("once")).id == "d1"
    assert len(harness.requests) == 2
    assert harness.sleeps == [3.0]


async def test_a_create_that_never_left_is_retried(harness: Harness) -> None:
    folder = {"folder": {"id": "d1", "displayName": "once", "parentFolderId": "media-root", "state": "OK"}}
    harness.script = [httpx.ConnectError("refused"), httpx.Response(200, json=folder)]
    async with harness.client() as wix:
        assert (await wix.create_folder("once")).id == "d1"
    assert len(harness.requests) == 2


async def test_validation_errors_keep_their_field(harness: Harness) -> None:
    violation = {"field": "paging.limit", "description": "must be at most 100", "violatedRule": "MAX"}
    harness.script = [
        httpx.Response(400, json={"message": "bad", "details": {"validationError": {"fieldViolations": [violation]}}})
    ]
    async with harness.client() as wix:
        with pytest.raises(errors.InvalidRequest) as invalid:
            await wix.search_files()
    assert invalid.value.field == "paging.limit"
    assert invalid.value.description == "must be at most 100"
    assert len(harness.requests) == 1


async def test_oauth_token_is_cached_refreshed_before_expiry_and_once_on_401(harness: Harness) -> None:
    tokens = iter(["token-A", "token-B", "token-C"])

    def token(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {
            "grant_type": "client_credentials", "client_id": "app", "client_secret": "s3cret", "instance_id": "inst",
        }  # fmt: skip
        return httpx.Response(200, json={"access_token": next(tokens), "token_type": "Bearer", "expires_in": 3600})

    auth = OAuthAuth(BASE, "app", SecretStr("s3cret"), "inst", clock=harness.clock)
    harness.script = [token, ok_file(), ok_file(), wix_error(401, "UNAUTHENTICATED"), token, ok_file()]
    async with harness.client(auth=auth) as wix:
        await wix.get_file("f1")
        await wix.get_file("f1")  # cached: no token request
        await wix.get_file("f1")  # 401: one refresh, one retry
    sent = [(r.url.path, r.headers.get("authorization")) for r in harness.requests]
    assert sent == [
        ("/oauth2/token", None),
        ("/site-media/v1/files/get-file-by-id", "token-A"),
        ("/site-media/v1/files/get-file-by-id", "token-A"),
        ("/site-media/v1/files/get-file-by-id", "token-A"),
        ("/oauth2/token", None),
        ("/site-media/v1/files/get-file-by-id", "token-B"),
    ]
    harness.requests.clear()
    harness.clock.advance(3600 - 299)  # inside the refresh margin
    harness.script = [token, ok_file()]
    async with harness.client(auth=auth) as wix:
        await wix.get_file("f1")
    assert [r.headers.get("authorization") for r in harness.requests] == [None, "token-C"]
    assert "s3cret" not in repr(auth)


async def test_a_second_401_is_not_looped(harness: Harness) -> None:
    harness.script = [wix_error(401, "UNAUTHENTICATED")]
    async with harness.client() as wix:  # an API key cannot be refreshed
        with pytest.raises(errors.PermissionDenied):
            await wix.get_file("f1")
    assert len(harness.requests) == 1


async def test_calls_send_wix_paths_and_auth_and_transfers_send_no_credentials(
    harness: Harness, tmp_path: Path
) -> None:
    page = {"files": [], "nextCursor": {"cursors": {"next": ""}, "hasNext": False}}
    upload_reply = {"file": FILE}
    harness.script = [
        httpx.Response(200, json=page),
        httpx.Response(200, json=page),
        httpx.Response(200, json={}),
        ok_file(),
        httpx.Response(200, json=upload_reply),
        httpx.Response(200, content=b"abc"),
    ]
    source = tmp_path / "a.png"
    source.write_bytes(b"abc")
    async with harness.client() as wix:
        await wix.list_files(
            msg.ListFilesRequest(parent_folder_id="d1", media_types=["IMAGE", "VIDEO"], private=False,
                                 sort=m.Sorting(field_name="displayName", order=m.SortOrder.DESC),
                                 paging=m.CursorPaging(limit=50, cursor="c/1+2"))
        )  # fmt: skip
        await wix.search_files(msg.SearchFilesRequest(search="cat", root_folder=m.RootFolder.TRASH_ROOT))
        await wix.bulk_delete_files(["wix:image://v1/f1/a.png#originWidth=1&originHeight=1", "f2"])
        await wix.update_file(msg.FileUpdate(id="f1", display_name="b.png"))
        await wix.upload("https://upload.example/upload/TOKEN", source, mime_type="image/png", file_name="a b.png")
        await wix.download("https://download.example/media/f1?token=T", tmp_path / "out.png")

    listed, searched, deleted, updated, uploaded, downloaded = harness.requests
    assert (listed.method, listed.url.path) == ("GET", "/site-media/v1/files")
    assert listed.url.query.decode() == (
        "parentFolderId=d1&mediaTypes=IMAGE&mediaTypes=VIDEO&private=false&sort.fieldName=displayName"
        "&sort.order=DESC&paging.limit=50&paging.cursor=c%2F1%2B2"
    )
    for api_call in (listed, searched, deleted, updated):
        assert api_call.headers["authorization"] == KEY
        assert api_call.headers["wix-site-id"] == "site-1"
    assert (searched.method, searched.url.path) == ("POST", "/site-media/v1/files/search")
    assert json.loads(searched.content) == {"search": "cat", "rootFolder": "TRASH_ROOT"}
    assert searched.headers["content-type"] == "application/json"
    assert json.loads(deleted.content) == {"fileIds": ["f1", "f2"]}
    assert deleted.url.path == "/site-media/v1/bulk/files/delete"
    assert (updated.method, updated.url.path) == ("PATCH", "/site-media/v1/files/update-file-descriptor")
    assert json.loads(updated.content) == {"file": {"id": "f1", "displayName": "b.png"}, "fieldMask": "displayName"}
    for transfer in (uploaded, downloaded):
        assert "authorization" not in transfer.headers
        assert "wix-site-id" not in transfer.headers
    assert (uploaded.method, str(uploaded.url)) == ("PUT", "https://upload.example/upload/TOKEN?filename=a+b.png")
    assert uploaded.headers["content-type"] == "image/png"
    assert uploaded.content == b"abc"
    assert (tmp_path / "out.png").read_bytes() == b"abc"


async def test_secrets_and_links_stay_out_of_errors_and_logs(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    harness.script = [httpx.ReadTimeout(f"timeout talking to {BASE}") for _ in range(4)]
    source = tmp_path / "a.bin"
    source.write_bytes(b"x")
    async with harness.client() as wix:
        with pytest.raises(errors.Unavailable) as read_failure:
            await wix.get_file("f1")
        harness.script = [httpx.ReadError("reset")]
        with pytest.raises(errors.Unavailable) as upload_failure:
            await wix.upload("https://upload.example/upload/SIGNED-TOKEN-123", source, mime_type="text/plain")
        assert KEY not in repr(wix)
    for text in (str(read_failure.value), str(upload_failure.value), caplog.text):
        assert KEY not in text
        assert "SIGNED-TOKEN-123" not in text
    assert read_failure.value.__cause__ is None
    assert "retrying" in caplog.text


async def test_rate_limiter_keeps_any_minute_under_the_limit() -> None:
    clock = FakeClock(0)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    limiter = RateLimiter(200, clock=clock, sleep=sleep)
    stamps = []
    for _ in range(600):
        await limiter.acquire()
        stamps.append(clock())
    busiest = max(sum(1 for t in stamps if start <= t < start + 60) for start in stamps)
    assert busiest <= 200
    assert stamps[-1] < 200  # and it does not crawl: 600 calls in under ~3.3 minutes


async def test_the_limiter_is_applied_to_api_calls(harness: Harness) -> None:
    harness.script = [ok_file() for _ in range(30)]
    limiter = RateLimiter(60, clock=harness.clock, sleep=harness.sleep)
    async with harness.client(limiter=limiter) as wix:
        for _ in range(30):
            await wix.get_file("f1")
    assert harness.clock() - 1_800_000_000.0 >= (30 - limiter.burst) / limiter.rate - 1e-6
