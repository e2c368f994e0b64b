"""Moving bytes through minted links: ``PUT`` upload, tus resumable upload, and download to disk.

Memory stays constant (one block in flight), progress is reported as bytes move, and no
Authorization header is ever sent: the signed link is the whole credential. Error messages never
repeat a link, since links carry their tokens.
"""

from __future__ import annotations

import base64
import inspect
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO
from urllib.parse import quote

import anyio
import anyio.to_thread
import httpx
from pydantic import ValidationError

from media_mcp import errors as e
from media_mcp.wix import messages as msg
from media_mcp.wix import models as m
from media_mcp.wix.mapping import UNSURE_STATUSES, from_response, from_transport, never_sent, outcome_unknown
from media_mcp.wix.resilience import RetryPolicy, Sleep

Progress = Callable[[int, int | None], Awaitable[None] | None]
BLOCK = 1024 * 1024
CHUNK = 8 * 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


async def _report(progress: Progress | None, done: int, total: int | None) -> None:
    if progress is None:
        return
    result = progress(done, total)
    if inspect.isawaitable(result):
        await result


Source = Path | IO[bytes]
"""A local file to send: a path (opened here), or a binary file already open (read as it is, never reopened)."""


async def _opened(source: Source) -> tuple[IO[bytes], int, bool]:
    """An open file for ``source``, its size (of the open file, not of whatever the name points at now), and
    whether it is ours to close."""
    if isinstance(source, Path):
        fh: IO[bytes] = await anyio.to_thread.run_sync(open, source, "rb")
        owned = True
    else:
        fh, owned = source, False
    try:
        size = (await anyio.to_thread.run_sync(os.fstat, fh.fileno())).st_size
    except BaseException:
        if owned:
            fh.close()
        raise
    return fh, size, owned


def _read_at(fh: IO[bytes], offset: int, count: int) -> bytes:
    """Bytes at ``offset`` without moving a shared file position (so a retry can start over safely)."""
    return os.pread(fh.fileno(), count, offset)


async def _blocks(fh: IO[bytes], size: int, progress: Progress | None) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size and (block := await anyio.to_thread.run_sync(_read_at, fh, sent, min(BLOCK, size - sent))):
        sent += len(block)
        yield block
        await _report(progress, sent, size)


def _file_reply(response: httpx.Response, what: str) -> m.FileDescriptor:
    """The file a finished upload answers; an answer that cannot say whether the file was stored says so."""
    if response.status_code in UNSURE_STATUSES:
        status = response.status_code
        raise outcome_unknown(what, f"the server failed while storing it (HTTP {status})", status)
    if not response.is_success:
        raise from_response(response)
    try:
        return msg.UploadFileResponse.model_validate(response.json()).file
    except (ValueError, ValidationError):
        raise outcome_unknown(what, "the server answered an unreadable body") from None


async def put_file(
    http: httpx.AsyncClient,
    upload_url: str,
    source: Source,
    mime_type: str,
    file_name: str | None,
    progress: Progress | None = None,
) -> m.FileDescriptor:
    """``PUT <uploadUrl>?filename=…`` with the file's bytes; repeated only if never sent."""
    fh, size, owned = await _opened(source)
    try:
        params = {"filename": file_name} if file_name else None
        headers = {"Content-Type": mime_type or "application/octet-stream", "Content-Length": str(size)}
        for attempt in range(3):
            try:
                response = await http.put(
                    upload_url, params=params, headers=headers, content=_blocks(fh, size, progress)
                )
            except httpx.HTTPError as exc:
                if never_sent(exc):
                    if attempt < 2:
                        continue
                    raise from_transport(exc, "upload") from None
                why = f"the file was sent but no answer came ({type(exc).__name__})"
                raise outcome_unknown("upload", why) from None
            return _file_reply(response, "upload")
        raise AssertionError("unreachable")
    finally:
        if owned:
            await anyio.to_thread.run_sync(fh.close)


class TusUpload:
    """One resumable upload: create, PATCH chunk by chunk (resuming from HEAD after a failure), finish."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoint: str,
        token: str,
        source: Source,
        mime_type: str,
        file_name: str,
        *,
        chunk_size: int = CHUNK,
        progress: Progress | None = None,
        sleep: Sleep = anyio.sleep,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.http = http
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.source = source
        self.mime_type = mime_type
        self.file_name = file_name
        self.chunk_size = max(1, chunk_size)
        self.progress = progress
        self.sleep = sleep
        self.retry = retry or RetryPolicy()
        self.location: str | None = None

    def _metadata(self) -> str:
        pairs = {"filename": self.file_name, "contentType": self.mime_type, "token": self.token}
        return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())

    async def run(self) -> m.FileDescriptor:
        fh, size, owned = await _opened(self.source)
        try:
            return await self._run(fh, size)
        finally:
            if owned:
                await anyio.to_thread.run_sync(fh.close)

    async def _run(self, fh: IO[bytes], size: int) -> m.FileDescriptor:
        self.location = await self._create(size)
        offset = 0
        failures = 0
        while offset < size:
            try:
                offset = await self._patch(fh, offset, size)
                failures = 0
                await _report(self.progress, offset, size)
            except (httpx.TransportError, e.Unavailable, e.Conflict, e.RateLimited) as exc:
                failures += 1
                if failures >= self.retry.attempts:
                    if isinstance(exc, httpx.HTTPError):
                        raise from_transport(exc, "resumable upload") from None
                    raise
                hint = exc.retry_after if isinstance(exc, e.RateLimited) else None
                await self.sleep(self.retry.delay(failures - 1, hint))
                # a failed HEAD is not the end: a PATCH at a stale offset answers 409, which leads to another HEAD
                try:
                    offset = await self._head()
                except e.RateLimited as refused:
                    await self.sleep(self.retry.delay(failures - 1, refused.retry_after))
                except e.Unavailable:
                    pass
        return await self._finish()

    async def _create(self, size: int) -> str:
        headers = {**TUS, "Upload-Length": str(size), "Upload-Metadata": self._metadata()}
        for attempt in range(3):
            try:
                response = await self.http.post(self.endpoint, headers=headers)
            except httpx.HTTPError as exc:
                if never_sent(exc) and attempt < 2:
                    continue
                raise from_transport(exc, "resumable upload") from None
            if response.status_code != 201 or "location" not in response.headers:
                raise (
                    from_response(response)
                    if response.status_code >= 400
                    else e.Unavailable(
                        "resumable upload: the server did not create the upload",
                        code="TUS_CREATE",
                        status=response.status_code,
                    )
                )
            return str(httpx.URL(self.endpoint).join(response.headers["location"]))
        raise AssertionError("unreachable")

    async def _patch(self, fh: IO[bytes], offset: int, size: int) -> int:
        assert self.location is not None

        chunk = await anyio.to_thread.run_sync(_read_at, fh, offset, min(self.chunk_size, size - offset))
        headers = {**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        response = await self.http.patch(self.location, headers=headers, content=chunk)
        if response.status_code != 204:
            raise from_response(response)
        return int(response.headers.get("upload-offset", offset + len(chunk)))

    async def _head(self) -> int:
        assert self.location is not None
        try:
            response = await self.http.head(self.location, headers=TUS)
        except httpx.HTTPError as exc:
            raise from_transport(exc, "resumable upload") from None
        if response.status_code != 200:
            raise from_response(response)
        return int(response.headers.get("upload-offset", "0"))

    async def _finish(self) -> m.FileDescriptor:
        url = f"{self.endpoint}/{quote(self.token, safe='')}"
        try:
            response = await self.http.put(url, params={"filename": self.file_name}, content=b"")
        except httpx.HTTPError as exc:
            if never_sent(exc):
                raise from_transport(exc, "resumable upload") from None
            why = f"the finishing request was sent but no answer came ({type(exc).__name__})"
            raise outcome_unknown("resumable upload", why) from None
        return _file_reply(response, "resumable upload")


async def fetch(http: httpx.AsyncClient, url: str, limit: int) -> bytes:
    """The body of ``url`` (a public media URL or a minted link), refused past ``limit`` bytes."""
    try:
        async with http.stream("GET", url) as response:
            if response.status_code != 200:
                await response.aread()
                raise from_response(response)
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise e.InvalidRequest(f"the file is larger than {limit} bytes", code="TOO_LARGE")
            body = bytearray()
            async for block in response.aiter_bytes():
                body += block
                if len(body) > limit:
                    raise e.InvalidRequest(f"the file is larger than {limit} bytes", code="TOO_LARGE")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise from_transport(exc, "download") from None


async def download(
    http: httpx.AsyncClient,
    url: str,
    target: Path,
    progress: Progress | None = None,
    attempts: int = 3,
) -> int:
    """Stream ``url`` into ``target`` via a temporary file; resumes with ``Range`` after a drop."""
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    fh = await anyio.to_thread.run_sync(open, partial, "wb")
    written = 0
    try:
        for attempt in range(attempts):
            headers = {"Range": f"bytes={written}-"} if written else {}
            try:
                async with http.stream("GET", url, headers=headers) as response:
                    if response.status_code not in (200, 206):
                        await response.aread()
                        raise from_response(response)
                    if written and response.status_code == 200:  # no range support: start over
                        await anyio.to_thread.run_sync(fh.seek, 0)
                        await anyio.to_thread.run_sync(fh.truncate, 0)
                        written = 0
                    total = _total(response, written)
                    async for block in response.aiter_bytes():
                        await anyio.to_thread.run_sync(fh.write, block)
                        written += len(block)
                        await _report(progress, written, total)
                break
            except httpx.HTTPError as exc:
                if attempt + 1 >= attempts:
                    raise from_transport(exc, "download") from None
        await anyio.to_thread.run_sync(_sync_close, fh)
        os.replace(partial, target)
    except BaseException:
        fh.close()
        partial.unlink(missing_ok=True)
        raise
    return written


def _total(response: httpx.Response, offset: int) -> int | None:
    length = response.headers.get("content-length")
    return offset + int(length) if length and length.isdigit() else None


def _sync_close(fh: IO[bytes]) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()
