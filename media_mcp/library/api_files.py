"""The Files service endpoints (F1-F8, F11, F12, F14-F16 of the Wix Media v2 API)."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from media_mcp.library import assets, importer, listing
from media_mcp.library.catalog import CatalogError
from media_mcp.library.db import in_search_thread, in_thread
from media_mcp.library.downloads import redirect_allowed
from media_mcp.library.errors import ApiError, invalid, not_found
from media_mcp.library.probe import guess_mime, is_markup, media_type_of, valid_mime
from media_mcp.library.records import ArchiveRecord
from media_mcp.library.rows import FileRow
from media_mcp.library.search import SearchRefused
from media_mcp.library.service import Library, parse_file_id
from media_mcp.library.tokens import AUD_ARCHIVE, AUD_DOWNLOAD, AUD_RESUMABLE, AUD_UPLOAD
from media_mcp.library.web import base_url, library, read_json, read_query, respond
from media_mcp.wix import messages as msg
from media_mcp.wix import models as m

ZIP_MAX_FILES = 1000


def catalog_error(exc: CatalogError) -> ApiError:
    """Turn a tree rule the catalog refused into the answer Wix would give."""
    if exc.code == "NOT_FOUND":
        return not_found("item", exc.ident)
    return ApiError(400, exc.code, str(exc), data={"id": exc.ident} if exc.ident else None)


def file_id_or_404(raw: str) -> str:
    file_id = parse_file_id(raw)
    if file_id is None:
        raise not_found("file", raw[:200])
    return file_id


async def _get_row(lib: Library, raw_id: str) -> FileRow:
    file_id = file_id_or_404(raw_id)
    row = await in_thread(lib.catalog.get_file, file_id)
    if row is None:
        raise not_found("file", file_id)
    return row


async def get_file(request: Request) -> Response:
    lib = library(request)
    row = await _get_row(lib, request.query_params.get("fileId", ""))
    (row,) = await importer.settle_stale(lib, [row])
    (file,) = await with_failures(lib, [lib.render_file(row, base_url(request))])
    return respond(msg.GetFileDescriptorResponse(file=file))


async def with_failures(lib: Library, files: list[m.FileDescriptor]) -> list[m.FileDescriptor]:
    """The descriptors, each FAILED one with the reason recorded for it."""
    failed = [f.id for f in files if f.operation_status == m.OperationStatus.FAILED]
    if failed:
        reasons = await in_thread(lib.catalog.failures, failed)
        for file in files:
            file.failure_reason = reasons.get(file.id, file.failure_reason)
    return files


async def get_files(request: Request) -> Response:
    lib = library(request)
    body = await read_json(request, msg.GetFileDescriptorsRequest)
    ids = [file_id_or_404(raw) for raw in body.file_ids]
    rows = await in_thread(lib.catalog.get_files, ids)
    if missing := [i for i in ids if i not in rows]:
        raise ApiError(400, "RESOURCE_NOT_FOUND", f"file not found: {missing[0]!r}", data={"ids": missing})
    base = base_url(request)
    found = await importer.settle_stale(lib, [rows[i] for i in ids])
    files = await with_failures(lib, [lib.render_file(row, base) for row in found])
    return respond(msg.GetFileDescriptorsResponse(files=files))


def _mask_paths(mask: str | msg.FieldMask | None, prefix: str) -> set[str] | None:
    if mask is None:
        return None
    paths = mask.split(",") if isinstance(mask, str) else mask.paths
    return {p.strip().removeprefix(prefix) for p in paths if p.strip()}


async def update_file(request: Request) -> Response:
    lib = library(request)
    body = await read_json(request, msg.UpdateFileDescriptorRequest)
    file_id = file_id_or_404(body.file.id)
    mask = _mask_paths(body.field_mask, "file.")
    wanted = {
        "displayName": body.file.display_name,
        "parentFolderId": body.file.parent_folder_id,
        "labels": body.file.labels,
    }
    changes = {k: v for k, v in wanted.items() if v is not None and (mask is None or k in mask)}
    if not changes:
        raise ApiError(
            400, "FIELD_MASK_IS_EMPTY_OR_MISSING", "nothing to update: set displayName, parentFolderId or labels"
        )
    try:
        row = await in_thread(
            lib.catalog.update_file,
            file_id,
            lib.clock(),
            display_name=changes.get("displayName"),  # type: ignore[arg-type]
            parent_id=changes.get("parentFolderId"),  # type: ignore[arg-type]
            labels=changes.get("labels"),  # type: ignore[arg-type]
        )
    except CatalogError as exc:
        raise catalog_error(exc) from exc
    return respond(msg.UpdateFileDescriptorResponse(file=lib.render_file(row, base_url(request))))


async def generate_file_download_url(request: Request) -> Response:
    lib = library(request)
    body = await read_json(request, msg.GenerateFileDownloadUrlRequest)
    row = await _get_row(lib, body.file_id)
    keys = body.asset_keys or [assets.SOURCE]
    found = assets.Processed.parse(row.processed) if row.status == m.OperationStatus.READY else None
    valid = found.keys() if found is not None else [assets.SOURCE]
    if bad := [k for k in keys if k not in valid]:
        has = ", ".join(repr(k) for k in valid)
        raise ApiError(
            400,
            "INVALID_ASSET_KEY",
            f"unknown asset key {bad[0]!r}; this file has {has}",
            data={"assetKey": bad[0], "validAssetKeys": valid},
        )
    minutes = body.expiration_in_minutes or 600
    disposition = body.content_disposition or m.ContentDisposition.ATTACHMENT
    claims: dict[str, Any] = {
        "obj": row.id,
        "cd": disposition.value,
    }
    if body.expiration_redirect_url:
        if not redirect_allowed(body.expiration_redirect_url):
            raise invalid("expirationRedirectUrl", "expirationRedirectUrl must be an http(s) URL", rule="FORMAT")
        claims["red"] = body.expiration_redirect_url
    base = base_url(request)
    urls = []
    for key in keys:
        # an asset is saved as "<name>-<key>.<ext>" (see downloads), unless the caller names the download
        named = body.download_file_name or (row.display_name if key == assets.SOURCE else None)
        named_as = {"fn": named} if named else {}
        token = lib.signer.mint(AUD_DOWNLOAD, {**claims, "ak": key, **named_as}, ttl_seconds=minutes * 60)
        urls.append(msg.DownloadUrl(url=f"{base}/download/media/{quote(row.id)}?token={token}", asset_key=key))
    return respond(msg.GenerateFileDownloadUrlResponse(download_urls=urls))


async def generate_files_download_url(request: Request) -> Response:
    """F1: a permanent zip link for these files, which are recorded now; later changes do not widen it.

    Private files are refused (400 ``PRIVATE_FILE_IN_ARCHIVE``): a zip link never expires and needs no
    key, while a private file's bytes must leave only through an expiring F2 link. Wix advises against
    zipping private files but leaves what F1 does with them unconfirmed; refusing is the safe choice.
    """
    lib = library(request)
    body = await read_json(request, msg.GenerateFilesDownloadUrlRequest)
    ids = list(dict.fromkeys(file_id_or_404(raw) for raw in body.file_ids))
    rows = await in_thread(lib.catalog.get_files, ids)
    if missing := [i for i in ids if i not in rows]:
        raise ApiError(400, "RESOURCE_NOT_FOUND", f"file not found: {missing[0]!r}", data={"ids": missing})
    if private := [i for i in ids if rows[i].private]:
        raise ApiError(
            400,
            "PRIVATE_FILE_IN_ARCHIVE",
            f"file {private[0]!r} is private: zip links never expire, so use generate-file-download-url for it",
            data={"ids": private},
        )
    return await mint_archive(request, ArchiveRecord(id=_archive_id(), file_ids=ids, folder_id=None))


def _archive_id() -> str:
    return secrets.token_hex(16)


async def mint_archive(request: Request, record: ArchiveRecord) -> Response:
    """Store a zip's recipe and answer its permanent, signed download URL."""
    lib = library(request)
    await in_thread(lib.records.create_archive, record, lib.clock())
    token = lib.signer.mint(AUD_ARCHIVE, {"obj": record.id}, ttl_seconds=None)
    url = f"{base_url(request)}/download/archive/{record.id}?token={token}"
    return respond(msg.GenerateFilesDownloadUrlResponse(download_url=url))


def _bad_mime(mime_type: str) -> ApiError:
    return ApiError(400, "UNSUPPORTED_FILE_FORMAT", f"{mime_type!r} is not a MIME type like 'image/png'")


def _check_upload_request(lib: Library, mime_type: str, file_name: str | None, size: int | None) -> None:
    if not valid_mime(mime_type):
        raise _bad_mime(mime_type)
    if size == 0:
        raise ApiError(400, "ZERO_FILE_SIZE", "sizeInBytes is 0: there is nothing to upload")
    limit = lib.settings.library_max_file_bytes
    if size is not None and size > limit:
        raise ApiError(400, "FILE_SIZE_OVER_LIMIT", f"files are limited to {limit} bytes", data={"limit": str(limit)})
    if file_name and mime_type.lower() != "application/octet-stream":
        by_name = guess_mime(file_name)
        # markup (HTML, SVG, XML, scripts) only under its own type: a page.html is no text/plain
        if by_name and (
            media_type_of(by_name) != media_type_of(mime_type) or is_markup(by_name) != is_markup(mime_type)
        ):
            raise ApiError(
                400,
                "MISMATCH_MIME_TYPE",
                f"mimeType {mime_type!r} does not match the file name {file_name!r} ({by_name})",
            )


def split_file_path(path: str | None) -> list[str]:
    if not path:
        return []
    parts = [p.strip() for p in path.split("/") if p.strip()]
    if any(p in (".", "..") for p in parts):
        raise invalid("filePath", "filePath may not contain '.' or '..' segments", rule="FORMAT")
    return parts


async def _check_parent(lib: Library, folder_id: str) -> None:
    if folder_id in (m.MEDIA_ROOT_ID, m.VISITOR_UPLOADS_ID):
        return
    folder = await in_thread(lib.catalog.get_folder, folder_id)
    if folder is None:
        raise not_found("folder", folder_id)
    if folder.state != "OK":
        raise ApiError(400, "FOLDER_IN_TRASH", f"folder {folder_id!r} is in the trash")


def _upload_claims(
    lib: Library, body: msg.GenerateFileUploadUrlRequest | msg.GenerateFileResumableUploadUrlRequest
) -> dict[str, Any]:
    """What the link is minted for, kept server-side; ``cap``: the most bytes it may bring, declared or not."""
    cap = lib.settings.library_max_file_bytes
    return {
        "mime": body.mime_type,
        "name": body.file_name,
        "size": body.size_in_bytes,
        "cap": min(cap, body.size_in_bytes) if body.size_in_bytes is not None else cap,
        "parent": body.parent_folder_id or m.MEDIA_ROOT_ID,
        "private": bool(body.private),
        "labels": body.labels or [],
        "path": split_file_path(body.file_path),
    }


async def _mint_upload_token(lib: Library, audience: str, req: dict[str, Any], ttl: float) -> str:
    """Keep the upload request server-side under a fresh ``jti``; the token carries only that id.

    Labels, names and paths can make a request far larger than a link may be (Wix's ``uploadToken``
    is at most 2000 characters), so the token stays small whatever was asked for.
    """
    jti = secrets.token_hex(12)
    now = lib.clock()
    await in_thread(lib.records.save_upload_request, jti, req, now + ttl, now)
    return lib.signer.mint(audience, {}, ttl_seconds=ttl, jti=jti)


async def generate_upload_url(request: Request) -> Response:
    lib = library(request)
    body = await read_json(request, msg.GenerateFileUploadUrlRequest)
    _check_upload_request(lib, body.mime_type, body.file_name, body.size_in_bytes)
    claims = _upload_claims(lib, body)
    await _check_parent(lib, claims["parent"])
    ttl = lib.settings.library_upload_link_minutes * 60
    token = await _mint_upload_token(lib, AUD_UPLOAD, claims, ttl)
    return respond(msg.GenerateFileUploadUrlResponse(upload_url=f"{base_url(request)}/upload/{token}"))


async def generate_resumable_upload_url(request: Request) -> Response:
    lib = library(request)
    body = await read_json(request, msg.GenerateFileResumableUploadUrlRequest)
    _check_upload_request(lib, body.mime_type, body.file_name, body.size_in_bytes)
    claims = _upload_claims(lib, body)
    await _check_parent(lib, claims["parent"])
    ttl = lib.settings.library_resumable_link_minutes * 60
    token = await _mint_upload_token(lib, AUD_RESUMABLE, claims, ttl)
    return respond(
        msg.GenerateFileResumableUploadUrlResponse(upload_url=f"{base_url(request)}/upload/tus", upload_token=token)
    )


async def import_file(request: Request) -> Response:
    lib = library(request)
    body = await read_json(request, msg.ImportFileRequest)
    if body.media_type == m.MediaType.OTHER:
        raise invalid("mediaType", "mediaType may not be OTHER", rule="FORMAT")
    if body.mime_type and not valid_mime(body.mime_type):
        raise _bad_mime(body.mime_type)
    parent = body.parent_folder_id or m.MEDIA_ROOT_ID
    await _check_parent(lib, parent)
    path = split_file_path(body.file_path)
    guard = importer.guard_for(request)
    url = await guard.check_url(body.url)
    row = importer.pending_row(lib, body, url, parent)
    try:
        row = await in_thread(lib.catalog.add_import, row, path, lib.member)
    except CatalogError as exc:
        raise catalog_error(exc) from exc
    descriptor = lib.render_file(row, base_url(request))
    job = importer.ImportJob(
        lib=lib, guard=guard, file_id=row.id, url=url, request=body, transport=request.app.state.import_transport
    )
    lib.start_job(job.run)
    return respond(msg.ImportFileResponse(file=descriptor))


async def _files_page(request: Request, query: listing.Query, paging: m.CursorPaging | None) -> Response:
    lib = library(request)
    after = None
    if paging and paging.cursor:
        query, after = listing.decode_cursor(paging.cursor, "files")
    page = listing.page_of(query, paging, after)
    try:
        rows = await in_search_thread(lib.catalog.list_files, page, lib.settings.library_search_budget_seconds)
    except SearchRefused as exc:
        raise listing.refused(exc) from exc
    base = base_url(request)
    files = [lib.render_file(r, base) for r in await importer.settle_stale(lib, rows[: page.limit])]
    return respond(msg.FilesPage(files=files, next_cursor=listing.next_cursor(query, rows, page.limit)))


def _list_query(body: msg.ListFilesRequest, scope: str) -> listing.Query:
    field, descending = listing.sort_of("files", body.sort)
    return listing.Query(
        kind="files",
        scope=scope,
        target=body.parent_folder_id or m.MEDIA_ROOT_ID,
        sort_field=field,
        descending=descending,
        media_types=listing.media_types_of(body.media_types),
        private=body.private,
    )


async def list_files(request: Request) -> Response:
    body = read_query(request, msg.ListFilesRequest)
    return await _files_page(request, _list_query(body, "parent"), body.paging)


async def list_deleted_files(request: Request) -> Response:
    body = read_query(request, msg.ListFilesRequest)
    return await _files_page(request, _list_query(body, "deleted"), body.paging)


async def search_files(request: Request) -> Response:
    body = await read_json(request, msg.SearchFilesRequest)
    field, descending = listing.sort_of("files", body.sort)
    query = listing.Query(
        kind="files",
        scope="root",
        target=(body.root_folder or m.RootFolder.MEDIA_ROOT).value,
        sort_field=field,
        descending=descending,
        media_types=listing.media_types_of(body.media_types),
        private=body.private,
        search=body.search,
    )
    return await _files_page(request, query, body.paging)


def _bulk_ids(raw_ids: list[str]) -> list[str]:
    """The distinct file ids of a bulk call; ones that cannot exist are dropped like unknown ones."""
    return list(dict.fromkeys(i for i in map(parse_file_id, raw_ids) if i is not None))


async def bulk_delete_files(request: Request) -> Response:
    """F14: unknown ids are skipped, as Wix reports no per-item failures (its answer is always ``{}``)."""
    lib = library(request)
    body = await read_json(request, msg.BulkDeleteFilesRequest)
    ids = _bulk_ids(body.file_ids)
    if body.permanent:
        blobs = await in_thread(lib.catalog.delete_files, ids)
        for key in blobs:
            lib.blobs.discard(key)
    else:
        await in_thread(lib.catalog.trash_files, ids, lib.clock())
    return JSONResponse({})


async def bulk_restore_files(request: Request) -> Response:
    """F15: unknown ids are skipped (see `bulk_delete_files`)."""
    lib = library(request)
    body = await read_json(request, msg.BulkRestoreFilesRequest)
    await in_thread(lib.catalog.restore_files, _bulk_ids(body.file_ids), lib.clock())
    return JSONResponse({})


routes = [  # the calls agents make most come first: a request is matched against each route in turn
    Route("/files/search", search_files, methods=["POST"]),
    Route("/files/get-file-by-id", get_file, methods=["GET"]),
    Route("/files", list_files, methods=["GET"]),
    Route("/files/get-files", get_files, methods=["POST"]),
    Route("/files/generate-download-url", generate_files_download_url, methods=["POST"]),
    Route("/files/generate-file-download-url", generate_file_download_url, methods=["POST"]),
    Route("/files/update-file-descriptor", update_file, methods=["PATCH"]),
    Route("/files/generate-upload-url", generate_upload_url, methods=["POST"]),
    Route("/files/generate-resumable-upload-url", generate_resumable_upload_url, methods=["POST"]),
    Route("/files/import", import_file, methods=["POST"]),
    Route("/bulk/files/delete", bulk_delete_files, methods=["POST"]),
    Route("/bulk/trash-bin/files/restore", bulk_restore_files, methods=["POST"]),
    Route("/trash-bin/files", list_deleted_files, methods=["GET"]),
]
