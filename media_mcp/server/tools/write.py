"""Tools that write or mint a write capability: upload links, folders, file updates, imports, uploads.

None of these is registered in read-only mode.
"""

from pathlib import Path
from typing import Annotated

from pydantic import Field

from media_mcp.guard import Guard, Progress, UploadGrant
from media_mcp.guard.text import LABEL_CAP
from media_mcp.server.binding import CLIENT_ROOTS, PROGRESS
from media_mcp.server.outputs import FileBrief, FileResult, FolderResult
from media_mcp.server.tools.read import FileId

FolderArg = Annotated[str | None, Field(max_length=100, description="Target folder (default 'media-root').")]


async def generate_upload_url(
    guard: Guard,
    file_name: Annotated[str, Field(min_length=1, max_length=255, description="Name with extension, e.g. cat.png.")],
    mime_type: Annotated[str, Field(min_length=3, max_length=100, description="e.g. image/png.")],
    size_bytes: Annotated[int | None, Field(ge=1, description="Exact size (needed for large files).")] = None,
    folder_id: FolderArg = None,
    private: Annotated[bool, Field(description="Private: reachable only through short-lived links.")] = False,
    resumable: Annotated[bool | None, Field(description="Use tus; default: above 10 MB.")] = None,
) -> UploadGrant:
    """A single-use upload link and the steps to use it; share it only with the uploader."""
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
    """Create a folder; answers it with its id and the folder it is in."""
    return FolderResult(folder=await guard.create_folder(name=name, parent_id=parent_folder_id))


async def update_file(
    guard: Guard,
    file_id: FileId,
    name: Annotated[str | None, Field(min_length=1, max_length=255, description="New name.")] = None,
    folder_id: Annotated[str | None, Field(max_length=100, description="New folder.")] = None,
    labels: Annotated[
        list[Annotated[str, Field(max_length=LABEL_CAP)]] | None,
        Field(max_length=100, description="New labels (replacing the old)."),
    ] = None,
) -> FileResult:
    """Rename, move or relabel a file (old values are overwritten)."""
    file = await guard.update_file(file_id, name=name, folder_id=folder_id, labels=labels)
    return FileResult(file=FileBrief.of(file))


async def import_file(
    guard: Guard,
    url: Annotated[str, Field(min_length=8, max_length=2000, description="Public http(s) URL.")],
    name: Annotated[str | None, Field(max_length=255, description="Name, with extension.")] = None,
    folder_id: FolderArg = None,
    private: Annotated[bool, Field(description="Make it private.")] = False,
    mime_type: Annotated[str | None, Field(max_length=100, description="Its type, if the URL does not say.")] = None,
) -> FileResult:
    """Import a file from a public URL; it arrives PENDING: poll get_file until READY."""
    file = await guard.import_file(url=url, name=name, folder_id=folder_id, private=private, mime_type=mime_type)
    return FileResult(
        file=FileBrief.of(file), message="Import started; call get_file until status is READY (or FAILED)."
    )


async def upload_file(
    guard: Guard,
    path: Annotated[str, Field(min_length=1, max_length=4096, description="Local file path inside an upload root.")],
    roots: Annotated[list[Path], CLIENT_ROOTS],
    progress: Annotated[Progress | None, PROGRESS],
    folder_id: FolderArg = None,
    private: Annotated[bool, Field(description="Make it private.")] = False,
    name: Annotated[str | None, Field(max_length=255, description="Name in the Media Manager.")] = None,
) -> FileResult:
    """Upload a local file from an allowed upload root, with progress."""
    file = await guard.upload_local(
        path=path, roots=roots, folder_id=folder_id, private=private, name=name, progress=progress
    )
    return FileResult(file=FileBrief.of(file))
