"""Tools that write or mint a write capability: upload links, folders, file updates, imports, uploads.

None of these is registered in read-only mode.
"""

from pathlib import Path
from typing import Annotated

from pydantic import Field

from media_mcp.guard import FileBrief, Guard, Progress, UpdateOutcome, UploadGrant, UploadOutcome
from media_mcp.guard.text import LABEL_CAP
from media_mcp.server.binding import CLIENT_ROOTS, PROGRESS, SettingBound
from media_mcp.server.outputs import FileResult, FolderResult
from media_mcp.server.tools.read import FileId, FolderId

Labels = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=LABEL_CAP)]] | None, Field(max_length=100, description="Labels.")
]
FolderArg = Annotated[str | None, Field(max_length=100, description="Target folder (default: top).")]


async def generate_upload_url(
    guard: Guard,
    file_name: Annotated[str, Field(min_length=1, max_length=255, description="Name with extension, e.g. cat.png.")],
    mime_type: Annotated[str, Field(min_length=3, max_length=100, description="e.g. image/png.")],
    size_bytes: Annotated[
        int | None,
        Field(ge=1, description="Exact size; without it, a resumable link."),
        SettingBound("le", "max_upload_bytes"),
    ] = None,
    folder_id: FolderArg = None,
    private: Annotated[bool, Field(description="Reachable only through short links.")] = False,
    resumable: Annotated[bool | None, Field(description="Use tus; default: above 10 MB.")] = None,
) -> UploadGrant:
    """A single-use upload link and how to use it; share it only with the uploader."""
    return await guard.upload_link(
        file_name=file_name,
        mime_type=mime_type,
        size_bytes=size_bytes,
        folder_id=folder_id,
        private=private,
        resumable=resumable,
    )


async def create_folder(
    guard: Guard,
    name: Annotated[str, Field(min_length=1, max_length=1000, description="The new folder's name.")],
    parent_folder_id: Annotated[
        str | None, Field(max_length=100, description="Parent folder (default: top level).")
    ] = None,
) -> FolderResult:
    """Create a folder; answers its id and where it is."""
    return FolderResult(folder=await guard.create_folder(name=name, parent_id=parent_folder_id))


async def update_file(
    guard: Guard,
    file_id: Annotated[FileId | None, Field(description="One file.")] = None,
    file_ids: Annotated[
        list[FileId] | None,
        Field(description="Several files, changed alike."),
        SettingBound("max_length", "max_batch_items"),
    ] = None,
    name: Annotated[str | None, Field(min_length=1, max_length=255, description="New name (one file).")] = None,
    names: Annotated[
        dict[str, Annotated[str, Field(min_length=1, max_length=255)]] | None,
        Field(description="New names: {file_id: name}."),
        SettingBound("max_length", "max_batch_items"),
    ] = None,
    folder_id: Annotated[str | None, Field(min_length=1, max_length=100, description="Move into this folder.")] = None,
    labels: Labels = None,
    add_labels: Labels = None,
    remove_labels: Labels = None,
) -> UpdateOutcome:
    """Rename, move or relabel up to 100 files; answers each as it is now, and what could not change and why.
    labels replaces all labels; add_labels/remove_labels edit them."""
    ids = ([file_id] if file_id else []) + (file_ids or [])
    return await guard.update_files(
        ids, name=name, names=names, folder_id=folder_id, labels=labels, add_labels=add_labels,
        remove_labels=remove_labels,
    )  # fmt: skip


async def update_folder(
    guard: Guard,
    folder_id: FolderId,
    name: Annotated[str | None, Field(min_length=1, max_length=1000, description="New name.")] = None,
    parent_folder_id: Annotated[
        str | None, Field(min_length=1, max_length=100, description="Move under this folder ('media-root': top).")
    ] = None,
) -> FolderResult:
    """Rename a folder, or move it (with all inside) under another; answers it as it is now."""
    return FolderResult(folder=await guard.update_folder(folder_id, name=name, parent_id=parent_folder_id))


async def import_file(
    guard: Guard,
    url: Annotated[str, Field(min_length=8, max_length=2000, description="Public http(s) URL.")],
    name: Annotated[str | None, Field(min_length=1, max_length=255, description="Name, with extension.")] = None,
    folder_id: FolderArg = None,
    private: Annotated[bool, Field(description="Make it private.")] = False,
    mime_type: Annotated[str | None, Field(max_length=100, description="Its type, if the URL does not say.")] = None,
    labels: Labels = None,
) -> FileResult:
    """Import a file from a public URL; it arrives PENDING: poll get_file until READY."""
    file = await guard.import_file(
        url=url, name=name, folder_id=folder_id, private=private, mime_type=mime_type, labels=labels
    )
    return FileResult(
        file=FileBrief.of(file), message="Import started; call get_file until status is READY (or FAILED)."
    )


async def upload_file(
    guard: Guard,
    roots: Annotated[list[Path], CLIENT_ROOTS],
    progress: Annotated[Progress | None, PROGRESS],
    path: Annotated[
        str | None, Field(min_length=1, max_length=4096, description="A local file, or a directory: its files.")
    ] = None,
    paths: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=4096)]] | None,
        Field(description="Several files or directories."),
        SettingBound("max_length", "max_batch_items"),
    ] = None,
    folder_id: FolderArg = None,
    private: Annotated[bool, Field(description="Make them private.")] = False,
    name: Annotated[str | None, Field(min_length=1, max_length=255, description="Name (one file).")] = None,
    labels: Labels = None,
) -> UploadOutcome:
    """Upload local files or directories from the upload roots, with progress; answers each file and each failed
    path."""
    wanted = ([path] if path else []) + (paths or [])
    return await guard.upload_local(
        paths=wanted, roots=roots, folder_id=folder_id, private=private, name=name, labels=labels, progress=progress
    )
