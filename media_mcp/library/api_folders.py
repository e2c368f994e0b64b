"""The Folders service endpoints (D1-D9 of the Wix Media v2 API)."""

from __future__ import annotations

import re
import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from media_mcp.library import listing
from media_mcp.library.api_files import ZIP_MAX_FILES, catalog_error, mint_archive
from media_mcp.library.catalog import CatalogError
from media_mcp.library.db import in_search_thread, in_thread
from media_mcp.library.errors import ApiError, not_found
from media_mcp.library.records import ArchiveRecord
from media_mcp.library.search import SearchRefused
from media_mcp.library.web import library, read_json, read_query, respond
from media_mcp.wix import messages as msg
from media_mcp.wix import models as m

_FOLDER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.~-]{0,99}$")


def _folder_id(raw: str) -> str:
    if not _FOLDER_ID_RE.match(raw):
        raise not_found("folder", raw[:100])
    return raw


def _not_system(folder_id: str, action: str) -> None:
    if folder_id in m.SYSTEM_FOLDER_IDS:
        raise ApiError(400, "SYSTEM_FOLDER", f"the system folder {folder_id!r} cannot be {action}")


async def create_folder(request: Request) -> Response:
    lib = library(request)
    body = await read_json(request, msg.CreateFolderRequest)
    parent = _folder_id(body.parent_folder_id or m.MEDIA_ROOT_ID)
    try:
        row = await in_thread(lib.catalog.create_folder, secrets.token_hex(16), body.display_name, parent, lib.clock())
    except CatalogError as exc:
        raise catalog_error(exc) from exc
    return respond(msg.FolderResponse(folder=lib.render_folder(row)))


async def get_folder(request: Request) -> Response:
    lib = library(request)
    folder_id = _folder_id(request.path_params["folder_id"])
    if folder_id in m.SYSTEM_FOLDER_IDS:
        return respond(msg.FolderResponse(folder=lib.render_system_folder(folder_id)))
    row = await in_thread(lib.catalog.get_folder, folder_id)
    if row is None:
        raise not_found("folder", folder_id)
    return respond(msg.FolderResponse(folder=lib.render_folder(row)))


async def update_folder(request: Request) -> Response:
    lib = library(request)
    folder_id = _folder_id(request.path_params["folder_id"])
    body = await read_json(request, msg.UpdateFolderRequest)
    if body.folder.id != folder_id:
        raise ApiError(400, "INVALID_ARGUMENT", "folder.id in the body must match the folder id in the path")
    _not_system(folder_id, "changed")
    mask = None
    if body.field_mask is not None:
        paths = body.field_mask.split(",") if isinstance(body.field_mask, str) else body.field_mask.paths
        mask = {p.strip().removeprefix("folder.") for p in paths}
    name = body.folder.display_name if mask is None or "displayName" in mask else None
    parent = body.folder.parent_folder_id if mask is None or "parentFolderId" in mask else None
    if name is None and parent is None:
        raise ApiError(400, "FIELD_MASK_IS_EMPTY_OR_MISSING", "nothing to update: set displayName or parentFolderId")
    try:
        row = await in_thread(
            lib.catalog.update_folder,
            folder_id,
            lib.clock(),
            display_name=name,
            parent_id=_folder_id(parent) if parent else None,
        )
    except CatalogError as exc:
        raise catalog_error(exc) from exc
    return respond(msg.FolderResponse(folder=lib.render_folder(row)))


async def generate_folder_download_url(request: Request) -> Response:
    """D6: a permanent zip link for the folder's public files, at any depth, as they are now.

    The files are recorded at mint time, so the link never serves what is added later. Private files
    are left out (a zip link never expires and needs no key) and the trash cannot be zipped.
    """
    lib = library(request)
    folder_id = _folder_id(request.path_params["folder_id"])
    if folder_id == m.TRASH_ROOT_ID:
        raise ApiError(400, "SYSTEM_FOLDER", "the trash cannot be downloaded as a zip")
    if folder_id not in m.SYSTEM_FOLDER_IDS and await in_thread(lib.catalog.get_folder, folder_id) is None:
        raise not_found("folder", folder_id)
    files = await in_thread(lib.catalog.folder_files, folder_id, ZIP_MAX_FILES)
    if len(files) > ZIP_MAX_FILES:
        raise ApiError(400, "TOO_MANY_FILES", f"a folder zip holds at most {ZIP_MAX_FILES} files")
    record = ArchiveRecord(id=secrets.token_hex(16), file_ids=[f.id for f in files], folder_id=folder_id)
    return await mint_archive(request, record)


def _list_query(body: msg.ListFoldersRequest, scope: str) -> listing.Query:
    field, descending = listing.sort_of("folders", body.sort)
    return listing.Query(
        kind="folders",
        scope=scope,
        target=body.parent_folder_id or m.MEDIA_ROOT_ID,
        sort_field=field,
        descending=descending,
    )


async def _folders_page(request: Request, query: listing.Query, paging: m.CursorPaging | None) -> Response:
    lib = library(request)
    after = None
    if paging and paging.cursor:
        query, after = listing.decode_cursor(paging.cursor, "folders")
    page = listing.page_of(query, paging, after)
    try:
        rows = await in_search_thread(lib.catalog.list_folders, page, lib.settings.library_search_budget_seconds)
    except SearchRefused as exc:
        raise listing.refused(exc) from exc
    folders = [lib.render_folder(r) for r in rows[: page.limit]]
    return respond(msg.FoldersPage(folders=folders, next_cursor=listing.next_cursor(query, rows, page.limit)))


async def list_folders(request: Request) -> Response:
    body = read_query(request, msg.ListFoldersRequest)
    return await _folders_page(request, _list_query(body, "parent"), body.paging)


async def list_deleted_folders(request: Request) -> Response:
    body = read_query(request, msg.ListFoldersRequest)
    return await _folders_page(request, _list_query(body, "deleted"), body.paging)


async def search_folders(request: Request) -> Response:
    body = await read_json(request, msg.SearchFoldersRequest)
    field, descending = listing.sort_of("folders", body.sort)
    query = listing.Query(
        kind="folders",
        scope="root",
        target=(body.root_folder or m.RootFolder.MEDIA_ROOT).value,
        sort_field=field,
        descending=descending,
        search=body.search,
    )
    return await _folders_page(request, query, body.paging)


def _bulk_ids(raw_ids: list[str], action: str) -> list[str]:
    """The distinct folder ids of a bulk call: system folders are refused, impossible ids dropped like unknown ones."""
    ids = list(dict.fromkeys(raw for raw in raw_ids if _FOLDER_ID_RE.match(raw)))
    for folder_id in ids:
        _not_system(folder_id, action)
    return ids


async def bulk_delete_folders(request: Request) -> Response:
    """D7: unknown ids are skipped, as Wix reports no per-item failures (its answer is always ``{}``)."""
    lib = library(request)
    body = await read_json(request, msg.BulkDeleteFoldersRequest)
    ids = _bulk_ids(body.folder_ids, "deleted")
    if body.permanent:
        for key in await in_thread(lib.catalog.delete_folders, ids):
            lib.blobs.discard(key)
    else:
        await in_thread(lib.catalog.trash_folders, ids, lib.clock())
    return JSONResponse({})


async def bulk_restore_folders(request: Request) -> Response:
    """D8: unknown ids are skipped (see `bulk_delete_folders`)."""
    lib = library(request)
    body = await read_json(request, msg.BulkRestoreFoldersRequest)
    await in_thread(lib.catalog.restore_folders, _bulk_ids(body.folder_ids, "restored"), lib.clock())
    return JSONResponse({})


routes = [
    Route("/folders", create_folder, methods=["POST"]),
    Route("/folders", list_folders, methods=["GET"]),
    Route("/folders/search", search_folders, methods=["POST"]),
    Route("/folders/{folder_id}", get_folder, methods=["GET"]),
    Route("/folders/{folder_id}", update_folder, methods=["PATCH"]),
    Route("/folders/{folder_id}/generate-download-url", generate_folder_download_url, methods=["POST"]),
    Route("/bulk/folders/delete", bulk_delete_folders, methods=["POST"]),
    Route("/bulk/trash-bin/folders/restore", bulk_restore_folders, methods=["POST"]),
    Route("/trash-bin/folders", list_deleted_folders, methods=["GET"]),
]
