"""Downloads: signed expiring links, permanent zip links, and static URLs for public files.

A private file's bytes leave only through a link whose token checks out; its static URL is 403.
"""

from __future__ import annotations

import os
import re
import unicodedata
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from media_mcp.library import transforms
from media_mcp.library.assets import SOURCE, download_name
from media_mcp.library.datadir import OWNER_FILE
from media_mcp.library.db import in_thread
from media_mcp.library.errors import ApiError
from media_mcp.library.outcomes import AssetRow
from media_mcp.library.rows import FileRow
from media_mcp.library.search import IDS, ids_param
from media_mcp.library.service import Library, parse_file_id
from media_mcp.library.tokens import AUD_ARCHIVE, AUD_DOWNLOAD, TokenExpired, TokenInvalid
from media_mcp.library.web import library

_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f"\\/:*?<>|]')
_ARCHIVE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
ARCHIVE_SLOTS = 2
"""Zips built and sent at once per app (`create_app` makes the semaphore); each is a temporary file."""
_SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}
_ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
    '<rect x="8" y="4" width="48" height="56" rx="4" fill="#e5e7eb" stroke="#6b7280"/>'
    '<text x="32" y="38" font-size="9" text-anchor="middle" font-family="sans-serif" fill="#374151">{}</text></svg>'
)
_ICON_KINDS = {"unknown", "image", "video", "audio", "document", "vector", "archive", "model3d", "other"}


class BigChunkFileResponse(FileResponse):
    """Reads the file in 1 MiB blocks: fewer thread hops per gigabyte than the default 64 KiB."""

    chunk_size = 1024 * 1024


class ArchiveResponse(BigChunkFileResponse):
    """A zip built into a temporary file when the response starts and removed when it ends, however it ends.

    At most `ARCHIVE_SLOTS` zips exist at once (others wait), which bounds the disk they take; memory is
    one read block per response. Range is ignored (a 200 with the whole zip is a valid answer), so no
    400/416 path can skip the clean-up.
    """

    def __init__(self, path: Path, entries: list[tuple[str, Path]], slots: anyio.Semaphore, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        del self.headers["accept-ranges"]
        self.entries = entries
        self.slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ignored = (b"range", b"if-range")
        extensions = {k: v for k, v in scope.get("extensions", {}).items() if k != "http.response.pathsend"}
        scope = {
            **scope,
            "headers": [(k, v) for k, v in scope["headers"] if k.lower() not in ignored],
            "extensions": extensions,
        }
        target = Path(self.path)
        async with self.slots:
            try:
                await anyio.to_thread.run_sync(_build_zip, target, self.entries)
                await super().__call__(scope, receive, send)
            finally:
                target.unlink(missing_ok=True)


def safe_filename(name: str, fallback: str = "file") -> str:
    """A file name fit for a header or a zip entry: no path parts, controls, bidi or separators."""
    cleaned = "".join(c for c in name if unicodedata.category(c) not in ("Cf", "Cc", "Zl", "Zp"))
    cleaned = _UNSAFE_NAME.sub("_", cleaned).strip().strip(".")
    return cleaned[:100] or fallback


REDIRECT_MAX_CHARS = 2000
_NOT_IN_URL = re.compile(r"[\x00-\x20\x7f\\]")


def redirect_allowed(url: str) -> bool:
    """May an expired link send the browser to ``url``? Only an absolute http(s) URL with a host, nothing else.

    Checked when the link is minted and again when it redirects (a token minted by an older version may carry
    anything): a ``javascript:``, ``data:`` or ``file:`` target, or one a browser would read differently (spaces,
    controls, backslashes), is never followed.
    """
    if len(url) > REDIRECT_MAX_CHARS or _NOT_IN_URL.search(url):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host)


def _forbidden(message: str) -> ApiError:
    return ApiError(403, "FORBIDDEN", message)


async def _servable(lib: Library, raw_id: str) -> tuple[FileRow, Path]:
    file_id = parse_file_id(raw_id)
    row = await in_thread(lib.catalog.get_file, file_id) if file_id else None
    if row is None or row.blob is None:
        raise ApiError(404, "NOT_FOUND", "no such file, or it is not ready yet")
    return row, lib.blobs.path_of(row.blob)


async def _asset(lib: Library, row: FileRow, key: str) -> AssetRow:
    """A derived asset of a file, which processing made (the download link or URL names its key)."""
    found = await in_thread(lib.outcomes.asset, row.id, key)
    if found is None:
        raise ApiError(404, "NOT_FOUND", f"this file has no asset {key!r}")
    return found


async def download_media(request: Request) -> Response:
    lib = library(request)
    try:
        claims = lib.signer.check(request.query_params.get("token", ""), AUD_DOWNLOAD)
    except TokenExpired as exc:
        redirect = exc.claims.get("red")
        if isinstance(redirect, str) and redirect_allowed(redirect):
            return RedirectResponse(redirect, status_code=302)
        raise _forbidden("this download link has expired") from exc
    except TokenInvalid as exc:
        raise _forbidden("this download link is not valid") from exc
    if claims.get("obj") != parse_file_id(request.path_params["file_id"]):
        raise _forbidden("this download link is for another file")
    row, path = await _servable(lib, request.path_params["file_id"])
    disposition = "inline" if claims.get("cd") == "INLINE" else "attachment"
    key, mime, name = str(claims.get("ak") or SOURCE), row.mime_type, row.display_name
    if key != SOURCE:
        asset = await _asset(lib, row, key)
        path, mime, name = lib.blobs.path_of(asset.blob), asset.mime, download_name(row.display_name, key, asset.mime)
    return BigChunkFileResponse(
        path,
        media_type=mime,
        filename=safe_filename(str(claims.get("fn") or name)),
        content_disposition_type=disposition,
        headers={**_SECURITY_HEADERS, "Cache-Control": "private, no-store"},
    )


async def static_media(request: Request) -> Response:
    lib = library(request)
    row, path = await _servable(lib, request.path_params["file_id"])
    if row.private:
        raise _forbidden("this file is private: ask for a download link (generate-file-download-url)")
    return BigChunkFileResponse(
        path,
        media_type=row.mime_type,
        headers={**_SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"},
    )


async def static_asset(request: Request) -> Response:
    """A public file's derived asset (preview, thumbnail, rendition) by its key."""
    lib = library(request)
    row, _ = await _servable(lib, request.path_params["file_id"])
    if row.private:
        raise _forbidden("this file is private: ask for a download link (generate-file-download-url)")
    asset = await _asset(lib, row, request.path_params["key"])
    return BigChunkFileResponse(
        lib.blobs.path_of(asset.blob),
        media_type=asset.mime,
        headers={**_SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"},
    )


async def static_icon(request: Request) -> Response:
    kind = request.path_params["kind"]
    if kind not in _ICON_KINDS:
        raise ApiError(404, "NOT_FOUND", "no such icon")
    return Response(_ICON.format(kind.upper()), media_type="image/svg+xml", headers=_SECURITY_HEADERS)


def _build_zip(target: Path, entries: list[tuple[str, Path]]) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_FILE)  # like all in the data directory
    with (
        os.fdopen(fd, "wb") as fh,
        zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive,
    ):
        for arcname, source in entries:
            archive.write(source, arcname)


def _entry_names(rows: list[FileRow], prefixes: dict[str, str]) -> list[tuple[str, FileRow]]:
    seen: set[str] = set()
    out = []
    for row in rows:
        stem = prefixes.get(row.parent_id, "") + safe_filename(row.display_name)
        name, n = stem, 1
        while name.casefold() in seen:
            base, dot, ext = stem.rpartition(".")
            name = f"{base} ({n}).{ext}" if dot and base else f"{stem} ({n})"
            n += 1
        seen.add(name.casefold())
        out.append((name, row))
    return out


async def download_archive(request: Request) -> Response:
    """A permanent zip link: only the public files recorded when the link was minted, still present."""
    lib = library(request)
    archive_id = request.path_params["archive_id"]
    try:
        claims: dict[str, Any] = lib.signer.check(request.query_params.get("token", ""), AUD_ARCHIVE)
    except (TokenInvalid, TokenExpired) as exc:
        raise _forbidden("this archive link is not valid") from exc
    record = await in_thread(lib.records.get_archive, archive_id) if _ARCHIVE_ID_RE.match(archive_id) else None
    if record is None or claims.get("obj") != archive_id:
        raise _forbidden("this archive link is not valid")
    if record.file_ids is None:  # minted by a version that did not record the folder's files
        raise ApiError(410, "ARCHIVE_LINK_OUTDATED", "this zip link is no longer served; generate a new one")
    found = await in_thread(lib.catalog.get_files, record.file_ids)
    rows = [found[i] for i in record.file_ids if i in found and not found[i].private]
    prefixes = await in_thread(_folder_prefixes, lib, record.folder_id) if record.folder_id is not None else {}
    name = "folder" if record.folder_id is not None else "files"
    entries = [(arc, lib.blobs.path_of(row.blob)) for arc, row in _entry_names(rows, prefixes) if row.blob]
    return ArchiveResponse(
        lib.data.incoming / f"zip-{os.urandom(8).hex()}.zip",
        entries,
        request.app.state.archive_slots,
        media_type="application/zip",
        filename=f"{name}-{archive_id[:8]}.zip",
        headers={**_SECURITY_HEADERS, "Cache-Control": "private, no-store"},
    )


def _folder_prefixes(lib: Library, folder_id: str) -> dict[str, str]:
    """Each folder under ``folder_id`` mapped to its path inside the zip (``a/b/``)."""
    prefixes = {folder_id: ""}
    with lib.db.read() as conn:
        frontier = [folder_id]
        while frontier:
            rows = conn.execute(
                f"SELECT id, display_name, parent_id FROM folders WHERE parent_id IN ({IDS})", (ids_param(frontier),)
            ).fetchall()
            frontier = []
            for child in rows:
                prefixes[child["id"]] = prefixes[child["parent_id"]] + safe_filename(child["display_name"]) + "/"
                frontier.append(child["id"])
    return prefixes


routes = [
    Route("/download/media/{file_id}", download_media, methods=["GET", "HEAD"]),
    Route("/download/archive/{archive_id}", download_archive, methods=["GET"]),
    Route("/static/media/{file_id}", static_media, methods=["GET", "HEAD"]),
    Route(transforms.ROUTE, transforms.static_variant, methods=["GET", "HEAD"]),
    Route("/static/icons/{kind}.svg", static_icon, methods=["GET"]),
    Route("/static/assets/{file_id}/{key}", static_asset, methods=["GET", "HEAD"]),
]
