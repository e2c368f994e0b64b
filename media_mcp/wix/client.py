"""A typed, resilient async client for the Wix Media v2 REST API (Wix itself or the embedded library).

Every call is rate-limited, bounded in time, retried only where repeating it is safe, and
answers either the REST model or a `MediaError`.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import anyio
import httpx
from pydantic import BaseModel, ValidationError

from media_mcp import errors as e
from media_mcp.settings import WixSettings
from media_mcp.wix import messages as msg
from media_mcp.wix import models as m
from media_mcp.wix import transfers
from media_mcp.wix.auth import ApiKeyAuth, Auth, OAuthAuth
from media_mcp.wix.ids import plain_file_id
from media_mcp.wix.mapping import UNSURE_STATUSES, from_response, from_transport, never_sent, outcome_unknown
from media_mcp.wix.resilience import RETRY_STATUSES, Clock, Limiter, RateLimiter, RetryPolicy, Sleep

log = logging.getLogger("media_mcp.wix")

R = TypeVar("R", bound=BaseModel)
API_PREFIX = "/site-media/v1"
DEFAULT_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=30)


class Empty(m.WixModel):
    """The ``{}`` that bulk calls answer."""


QueryItems = list[tuple[str, str | int | float | bool | None]]


READS = frozenset({
    "get_file", "get_files", "list_files", "search_files", "list_deleted_files",
    "get_folder", "list_folders", "search_folders", "list_deleted_folders",
    "generate_file_download_url", "generate_files_download_url", "generate_folder_download_url",
})  # fmt: skip
"""The calls that change nothing on the site (download links included): all a read-only client sends."""


def flatten_query(wire: dict[str, Any], prefix: str = "") -> QueryItems:
    """GET parameters the Wix way: dots for nesting, a repeated key per array item."""
    out: QueryItems = []
    for key, value in wire.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += flatten_query(value, f"{name}.")
        elif isinstance(value, list):
            out += [(name, _scalar(v)) for v in value]
        elif value is not None:
            out.append((name, _scalar(value)))
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _segment(folder_id: str) -> str:
    """A folder id as one URL path segment; ids a path would swallow ('', '.', '..') name no folder."""
    if folder_id.strip() in ("", ".", ".."):
        raise e.NotFound(f"no folder has the id {folder_id!r}", code="FOLDER_NOT_FOUND", status=404)
    return quote(folder_id, safe="")


class WixMediaClient:
    """One ``httpx.AsyncClient`` to one API base URL; use as an async context manager.

    ``http`` may carry any transport: ``httpx.ASGITransport`` calls an app in this process (the embedded library).
    """

    def __init__(
        self,
        base_url: str,
        auth: Auth | None,
        *,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        timeout: float = 30.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = auth
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)), limits=DEFAULT_LIMITS, trust_env=False
        )
        self.retry = retry or RetryPolicy()
        self._limiter = limiter
        self._clock = clock
        self._sleep = sleep
        self._reads_only = False

    def reads_only(self) -> WixMediaClient:
        """This client, sharing its connections, that sends only the calls in `READS`: anything else (a write, or a
        call added later and not listed there) is refused before it is sent."""
        view = copy.copy(self)
        view._owns_http = False
        view._reads_only = True
        return view

    @classmethod
    def from_settings(cls, settings: WixSettings, **kwargs: Any) -> WixMediaClient:
        """A client for the Wix site the settings name (API key preferred over OAuth)."""
        auth: Auth
        if settings.api_key is not None and settings.site_id:
            auth = ApiKeyAuth(settings.api_key, settings.site_id)
        elif settings.client_id and settings.client_secret and settings.instance_id:
            auth = OAuthAuth(settings.api_url, settings.client_id, settings.client_secret, settings.instance_id)
        else:
            raise e.PermissionDenied("no Wix credentials: set WIX_API_KEY and WIX_SITE_ID, or the WIX_CLIENT_* trio")
        kwargs.setdefault("retry", RetryPolicy(budget=settings.call_budget_seconds))
        kwargs.setdefault(
            "limiter", RateLimiter(settings.rate_limit_per_minute, window=settings.rate_limit_window_seconds)
        )
        kwargs.setdefault("timeout", settings.timeout_seconds)
        return cls(settings.api_url, auth, **kwargs)

    def __repr__(self) -> str:
        return f"WixMediaClient({self.base_url!r}, auth={self._auth!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    # --- the one place requests are sent -------------------------------------------------

    async def _call(
        self,
        name: str,
        method: str,
        path: str,
        model: type[R],
        *,
        idempotent: bool,
        body: m.WixModel | None = None,
        query: m.WixModel | None = None,
    ) -> R:
        self._check_allowed(name)
        url = f"{self.base_url}{API_PREFIX}{path}"
        json = body.to_wire() if body is not None else None
        params = flatten_query(query.to_wire()) if query is not None else None
        deadline = self._clock() + self.retry.budget
        attempt = 0
        refreshed = False
        while True:
            if self._limiter is not None:
                await self._limiter.acquire()
            headers = await self._auth.headers(self.http) if self._auth is not None else {}
            try:
                response = await self.http.request(
                    method, url, json=json, params=params, headers=headers, timeout=self._attempt_timeout(deadline)
                )
            except httpx.InvalidURL as exc:  # an argument that no URL can carry (too long): never sent
                raise e.InvalidRequest(f"{name}: {exc}; shorten the arguments", code="URL_TOO_LONG") from None
            except httpx.HTTPError as exc:
                error = from_transport(exc, name)
                if (idempotent or never_sent(exc)) and await self._backoff(name, attempt, deadline, error):
                    attempt += 1
                    continue
                if not idempotent and not never_sent(exc):  # sent: the write may have been done
                    why = f"the request was sent but no answer came ({type(exc).__name__})"
                    raise outcome_unknown(name, why) from None
                raise error from None
            if response.status_code == 401 and not refreshed and self._auth is not None and self._auth.invalidate():
                refreshed = True
                continue
            if response.is_success:
                try:
                    return model.model_validate_json(response.content)
                except (ValueError, ValidationError):
                    error = e.Unavailable(f"{name}: the server answered an unreadable body", code="BAD_RESPONSE")
                    if idempotent and await self._backoff(name, attempt, deadline, error):
                        attempt += 1
                        continue
                    if not idempotent:  # a success status: most likely done, but the answer cannot say what
                        raise outcome_unknown(name, "the server answered an unreadable body") from None
                    raise error from None
            error = from_response(response)
            # a 429 refused the request before doing it, so even a create may be sent again (after Retry-After)
            retry = response.status_code in RETRY_STATUSES and (idempotent or response.status_code == 429)
            if retry and await self._backoff(name, attempt, deadline, error):
                attempt += 1
                continue
            if not idempotent and response.status_code in UNSURE_STATUSES:
                why = f"the server failed while handling it (HTTP {response.status_code})"
                raise outcome_unknown(name, why, response.status_code) from None
            raise error

    def _check_allowed(self, name: str) -> None:
        if self._reads_only and name not in READS:
            raise e.PermissionDenied(f"{name}: this server is read-only", code="READ_ONLY")

    def _attempt_timeout(self, deadline: float) -> httpx.Timeout:
        """The client's timeouts, cut to what is left of the call's budget, so a stalled attempt cannot outlast it."""
        left = max(deadline - self._clock(), 0.05)
        limits = self.http.timeout
        parts = (limits.connect, limits.read, limits.write, limits.pool)
        if all(part is not None and part <= left for part in parts):
            return limits
        connect, read, write, pool = (left if part is None else min(part, left) for part in parts)
        return httpx.Timeout(connect=connect, read=read, write=write, pool=pool)

    async def _backoff(self, name: str, attempt: int, deadline: float, error: e.MediaError) -> bool:
        """Wait before another attempt, if attempts and the time budget allow one."""
        if attempt + 1 >= self.retry.attempts:
            return False
        hint = error.retry_after if isinstance(error, e.RateLimited) else None
        delay = self.retry.delay(attempt, hint)
        if self._clock() + delay > deadline:
            return False
        log.warning("%s failed (%s); retrying in %.2fs", name, error.code or type(error).__name__, delay)
        await self._sleep(delay)
        return True

    # --- files ----------------------------------------------------------------------------

    async def generate_files_download_url(self, file_ids: list[str]) -> str:
        """F1: one permanent zip link for up to 1000 files."""
        body = msg.GenerateFilesDownloadUrlRequest(file_ids=[plain_file_id(i) for i in file_ids])
        reply = await self._call(
            "generate_files_download_url", "POST", "/files/generate-download-url",
            msg.GenerateFilesDownloadUrlResponse, idempotent=True, body=body,
        )  # fmt: skip
        return reply.download_url

    async def generate_file_download_url(self, request: msg.GenerateFileDownloadUrlRequest) -> list[msg.DownloadUrl]:
        """F2: temporary signed links, one per asset key."""
        request = request.model_copy(update={"file_id": plain_file_id(request.file_id)})
        reply = await self._call(
            "generate_file_download_url", "POST", "/files/generate-file-download-url",
            msg.GenerateFileDownloadUrlResponse, idempotent=True, body=request,
        )  # fmt: skip
        return reply.download_urls

    async def get_file(self, file_id: str) -> m.FileDescriptor:
        """F3."""
        path = f"/files/get-file-by-id?fileId={quote(plain_file_id(file_id), safe='')}"
        reply = await self._call("get_file", "GET", path, msg.GetFileDescriptorResponse, idempotent=True)
        return reply.file

    async def get_files(self, file_ids: list[str]) -> list[m.FileDescriptor]:
        """F4: up to 100 at once."""
        body = msg.GetFileDescriptorsRequest(file_ids=[plain_file_id(i) for i in file_ids])
        reply = await self._call(
            "get_files", "POST", "/files/get-files", msg.GetFileDescriptorsResponse, idempotent=True, body=body
        )
        return reply.files

    async def update_file(self, update: msg.FileUpdate) -> m.FileDescriptor:
        """F5: rename, move or relabel; only the fields set are changed."""
        update = update.model_copy(update={"id": plain_file_id(update.id)})
        paths = [k for k in ("displayName", "parentFolderId", "labels") if k in update.to_wire()]
        body = msg.UpdateFileDescriptorRequest(file=update, field_mask=",".join(paths) or None)
        reply = await self._call(
            "update_file", "PATCH", "/files/update-file-descriptor", msg.UpdateFileDescriptorResponse,
            idempotent=True, body=body,
        )  # fmt: skip
        return reply.file

    async def generate_upload_url(self, request: msg.GenerateFileUploadUrlRequest) -> str:
        """F6: a single-use ``PUT`` link."""
        reply = await self._call(
            "generate_upload_url", "POST", "/files/generate-upload-url", msg.GenerateFileUploadUrlResponse,
            idempotent=True, body=request,
        )  # fmt: skip
        return reply.upload_url

    async def generate_resumable_upload_url(
        self, request: msg.GenerateFileResumableUploadUrlRequest
    ) -> msg.GenerateFileResumableUploadUrlResponse:
        """F7: a tus endpoint and upload token."""
        if request.upload_protocol is None:
            request = request.model_copy(update={"upload_protocol": m.UploadProtocol.TUS})
        return await self._call(
            "generate_resumable_upload_url", "POST", "/files/generate-resumable-upload-url",
            msg.GenerateFileResumableUploadUrlResponse, idempotent=True, body=request,
        )  # fmt: skip

    async def import_file(self, request: msg.ImportFileRequest) -> m.FileDescriptor:
        """F8: never repeated once sent, since a repeat could import twice."""
        reply = await self._call(
            "import_file", "POST", "/files/import", msg.ImportFileResponse, idempotent=False, body=request
        )
        return reply.file

    async def list_files(self, request: msg.ListFilesRequest | None = None) -> msg.FilesPage:
        """F11: direct children of one folder."""
        return await self._call(
            "list_files", "GET", "/files", msg.FilesPage, idempotent=True, query=request or msg.ListFilesRequest()
        )

    async def search_files(self, request: msg.SearchFilesRequest | None = None) -> msg.FilesPage:
        """F12: a whole root, by text, type, privacy; sorted and paged."""
        return await self._call(
            "search_files", "POST", "/files/search", msg.FilesPage, idempotent=True,
            body=request or msg.SearchFilesRequest(),
        )  # fmt: skip

    async def bulk_delete_files(self, file_ids: list[str], *, permanent: bool = False) -> None:
        """F14: to the trash (repeatable) or, with ``permanent``, for good."""
        body = msg.BulkDeleteFilesRequest(file_ids=[plain_file_id(i) for i in file_ids], permanent=permanent or None)
        await self._call("bulk_delete_files", "POST", "/bulk/files/delete", Empty, idempotent=True, body=body)

    async def bulk_restore_files(self, file_ids: list[str]) -> None:
        """F15: back to where they were."""
        body = msg.BulkRestoreFilesRequest(file_ids=[plain_file_id(i) for i in file_ids])
        await self._call(
            "bulk_restore_files", "POST", "/bulk/trash-bin/files/restore", Empty, idempotent=True, body=body
        )

    async def list_deleted_files(self, request: msg.ListFilesRequest | None = None) -> msg.FilesPage:
        """F16: what is in the trash."""
        return await self._call(
            "list_deleted_files", "GET", "/trash-bin/files", msg.FilesPage, idempotent=True,
            query=request or msg.ListFilesRequest(),
        )  # fmt: skip

    # --- folders --------------------------------------------------------------------------

    async def create_folder(self, display_name: str, parent_folder_id: str | None = None) -> m.Folder:
        """D1: never repeated once sent, since a repeat could create two folders."""
        body = msg.CreateFolderRequest(display_name=display_name, parent_folder_id=parent_folder_id)
        reply = await self._call("create_folder", "POST", "/folders", msg.FolderResponse, idempotent=False, body=body)
        return reply.folder

    async def get_folder(self, folder_id: str) -> m.Folder:
        """D2."""
        path = f"/folders/{_segment(folder_id)}"
        reply = await self._call("get_folder", "GET", path, msg.FolderResponse, idempotent=True)
        return reply.folder

    async def list_folders(self, request: msg.ListFoldersRequest | None = None) -> msg.FoldersPage:
        """D3: direct children of one folder."""
        return await self._call(
            "list_folders", "GET", "/folders", msg.FoldersPage, idempotent=True,
            query=request or msg.ListFoldersRequest(),
        )  # fmt: skip

    async def search_folders(self, request: msg.SearchFoldersRequest | None = None) -> msg.FoldersPage:
        """D4: a whole root, by name."""
        return await self._call(
            "search_folders", "POST", "/folders/search", msg.FoldersPage, idempotent=True,
            body=request or msg.SearchFoldersRequest(),
        )  # fmt: skip

    async def update_folder(self, update: msg.FolderUpdate) -> m.Folder:
        """D5: rename or move."""
        paths = [k for k in ("displayName", "parentFolderId") if k in update.to_wire()]
        body = msg.UpdateFolderRequest(folder=update, field_mask=",".join(paths) or None)
        path = f"/folders/{_segment(update.id)}"
        reply = await self._call("update_folder", "PATCH", path, msg.FolderResponse, idempotent=True, body=body)
        return reply.folder

    async def generate_folder_download_url(self, folder_id: str) -> str:
        """D6: a permanent zip link for a folder tree."""
        path = f"/folders/{_segment(folder_id)}/generate-download-url"
        reply = await self._call(
            "generate_folder_download_url", "POST", path, msg.GenerateFolderDownloadUrlResponse, idempotent=True
        )
        return reply.download_url

    async def bulk_delete_folders(self, folder_ids: list[str], *, permanent: bool = False) -> None:
        """D7: folders and what they hold, to the trash or for good."""
        body = msg.BulkDeleteFoldersRequest(folder_ids=folder_ids, permanent=permanent or None)
        await self._call("bulk_delete_folders", "POST", "/bulk/folders/delete", Empty, idempotent=True, body=body)

    async def bulk_restore_folders(self, folder_ids: list[str]) -> None:
        """D8."""
        body = msg.BulkRestoreFoldersRequest(folder_ids=folder_ids)
        await self._call(
            "bulk_restore_folders", "POST", "/bulk/trash-bin/folders/restore", Empty, idempotent=True, body=body
        )

    async def list_deleted_folders(self, request: msg.ListFoldersRequest | None = None) -> msg.FoldersPage:
        """D9."""
        return await self._call(
            "list_deleted_folders", "GET", "/trash-bin/folders", msg.FoldersPage, idempotent=True,
            query=request or msg.ListFoldersRequest(),
        )  # fmt: skip

    # --- paging ---------------------------------------------------------------------------

    async def iter_files(
        self, request: msg.SearchFilesRequest | None = None, *, max_items: int = 1000
    ) -> AsyncIterator[m.FileDescriptor]:
        """Search results across pages, fetched lazily, at most ``max_items``."""

        async def fetch(r: msg.SearchFilesRequest) -> tuple[list[m.FileDescriptor], m.PagingMetadataV2]:
            page = await self.search_files(r)
            return page.files, page.next_cursor

        async for item in _walk(fetch, request or msg.SearchFilesRequest(), max_items):
            yield item

    async def iter_folders(
        self, request: msg.SearchFoldersRequest | None = None, *, max_items: int = 1000
    ) -> AsyncIterator[m.Folder]:
        """Folder search results across pages, fetched lazily, at most ``max_items``."""

        async def fetch(r: msg.SearchFoldersRequest) -> tuple[list[m.Folder], m.PagingMetadataV2]:
            page = await self.search_folders(r)
            return page.folders, page.next_cursor

        async for item in _walk(fetch, request or msg.SearchFoldersRequest(), max_items):
            yield item

    # --- transfers (no Authorization: the signed link is the credential) ---------------------

    async def upload(
        self,
        upload_url: str,
        source: transfers.Source,
        *,
        mime_type: str,
        file_name: str | None = None,
        progress: transfers.Progress | None = None,
    ) -> m.FileDescriptor:
        """``PUT`` a local file to a minted upload link, streaming from disk."""
        self._check_allowed("upload")
        return await transfers.put_file(self.http, upload_url, source, mime_type, file_name, progress)

    async def upload_resumable(
        self,
        minted: msg.GenerateFileResumableUploadUrlResponse,
        source: transfers.Source,
        *,
        mime_type: str,
        file_name: str,
        chunk_size: int = transfers.CHUNK,
        progress: transfers.Progress | None = None,
    ) -> m.FileDescriptor:
        """Send a local file with tus, resuming after dropped connections, then finalise it."""
        self._check_allowed("upload_resumable")
        uploader = transfers.TusUpload(
            self.http, minted.upload_url, minted.upload_token, source, mime_type, file_name,
            chunk_size=chunk_size, progress=progress, sleep=self._sleep, retry=self.retry,
        )  # fmt: skip
        return await uploader.run()

    async def fetch(self, url: str, *, limit: int) -> bytes:
        """The bytes behind a media URL or a download link (no credentials sent), at most ``limit`` of them."""
        return await transfers.fetch(self.http, url, limit)

    async def download(self, url: str, target: Path, *, progress: transfers.Progress | None = None) -> int:
        """Stream a download link to ``target`` (written whole or not at all); returns the size."""
        return await transfers.download(self.http, url, target, progress)


Req = TypeVar("Req", msg.SearchFilesRequest, msg.SearchFoldersRequest)
Item = TypeVar("Item")


async def _walk(
    fetch: Callable[[Req], Awaitable[tuple[list[Item], m.PagingMetadataV2]]], request: Req, max_items: int
) -> AsyncIterator[Item]:
    """Follow ``nextCursor`` page by page until the end or ``max_items``."""
    yielded = 0
    while True:
        items, paging_info = await fetch(request)
        for item in items:
            if yielded >= max_items:
                return
            yield item
            yielded += 1
        cursor = paging_info.cursors.next
        if not cursor or not paging_info.has_next or yielded >= max_items:
            return
        paging = m.CursorPaging(limit=request.paging.limit if request.paging else None, cursor=cursor)
        request = request.model_copy(update={"paging": paging})
