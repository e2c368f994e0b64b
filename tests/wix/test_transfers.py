"""Transfers through the adapter when connections drop: tus resumes from the server's offset, downloads
resume with Range, and nothing partial is left behind."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from media_mcp import errors
from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from media_mcp.wix import messages as msg
from media_mcp.wix.auth import ApiKeyAuth
from media_mcp.wix.client import WixMediaClient

pytestmark = pytest.mark.anyio


class BrokenStream(httpx.AsyncByteStream):
    """Yields the first part of a body, then fails like a dropped connection."""

    def __init__(self, body: bytes, cut: int) -> None:
        self.body = body
        self.cut = cut

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.body[: self.cut]
        raise httpx.ReadError("connection dropped")


class Flaky(httpx.AsyncBaseTransport):
    """The library in-process, with chosen requests cut off half-way."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.cut_patches: set[int] = set()
        self.cut_downloads = 0
        self.patches = 0
        self.log: list[tuple[str, str, str | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.log.append((request.method, request.url.path, request.headers.get("range")))
        if request.method == "PATCH":
            self.patches += 1
            if self.patches in self.cut_patches:
                body = await request.aread()
                half = body[: len(body) // 2]
                headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
                partial = httpx.Request("PATCH", request.url, headers=headers, content=half)
                await self.inner.handle_async_request(partial)  # the server keeps what arrived
                raise httpx.ReadError("connection dropped mid-PATCH")
        response = await self.inner.handle_async_request(request)
        if request.url.path.startswith("/download/") and self.cut_downloads:
            self.cut_downloads -= 1
            body = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, stream=BrokenStream(body, 1000))
        return response


@pytest.fixture
async def flaky(library: Library) -> AsyncIterator[tuple[WixMediaClient, Flaky]]:
    transport = Flaky(httpx.ASGITransport(app=create_app(library)))
    http = httpx.AsyncClient(transport=transport)
    auth = ApiKeyAuth(SecretStr(library.api_key), library.site_id)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with WixMediaClient("http://library.test", auth, http=http, sleep=sleep) as wix:
        yield wix, transport
    await http.aclose()


async def test_tus_upload_resumes_after_dropped_connections(
    flaky: tuple[WixMediaClient, Flaky], tmp_path: Path
) -> None:
    wix, transport = flaky
    data = os.urandom(700_001)
    source = tmp_path / "video.bin"
    source.write_bytes(data)
    transport.cut_patches = {2, 4}
    minted = await wix.generate_resumable_upload_url(
        msg.GenerateFileResumableUploadUrlRequest(mime_type="application/octet-stream", file_name="video.bin")
    )
    file = await wix.upload_resumable(
        minted, source, mime_type="application/octet-stream", file_name="video.bin", chunk_size=200_000
    )
    assert file.hash == hashlib.md5(data).hexdigest()
    assert file.size_in_bytes == len(data)
    heads = [entry for entry in transport.log if entry[0] == "HEAD"]
    assert len(heads) == 2
    target = tmp_path / "back.bin"
    [link] = await wix.generate_file_download_url(msg.GenerateFileDownloadUrlRequest(file_id=file.id))
    await wix.download(link.url, target)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()


async def test_download_resumes_with_range_and_leaves_no_partial_file(
    flaky: tuple[WixMediaClient, Flaky], tmp_path: Path
) -> None:
    wix, transport = flaky
    data = os.urandom(50_000)
    source = tmp_path / "a.bin"
    source.write_bytes(data)
    url = await wix.generate_upload_url(msg.GenerateFileUploadUrlRequest(mime_type="application/octet-stream"))
    file = await wix.upload(url, source, mime_type="application/octet-stream", file_name="a.bin")
    [link] = await wix.generate_file_download_url(msg.GenerateFileDownloadUrlRequest(file_id=file.id))

    out = tmp_path / "out"
    out.mkdir()
    transport.cut_downloads = 1
    progress: list[int] = []
    size = await wix.download(link.url, out / "a.bin", progress=lambda done, total: progress.append(done))
    assert size == len(data)
    assert (out / "a.bin").read_bytes() == data
    ranges = [r for method, path, r in transport.log if path.startswith("/download/")]
    assert ranges == [None, "bytes=1000-"]
    assert progress[-1] == len(data)

    transport.cut_downloads = 5
    with pytest.raises(errors.Unavailable):
        await wix.download(link.url, out / "never.bin")
    assert sorted(p.name for p in out.iterdir()) == ["a.bin"]


async def test_an_expired_download_link_is_permission_denied(library: Library, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(library)))
    async with WixMediaClient("http://library.test", ApiKeyAuth(SecretStr(library.api_key), None), http=http) as wix:
        with pytest.raises(errors.PermissionDenied):
            await wix.download("http://library.test/download/media/x?token=forged", out / "x")
    await http.aclose()
    assert list(out.iterdir()) == []
