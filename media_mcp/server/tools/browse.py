"""The media browser's own tools: a folder as the person sees it, its thumbnails, and trash by the person's click.

The model opens the browser with `get_folder` (a client that renders MCP Apps shows the folder there); these serve
the browser alone. The registry marks them for the app, hosts keep them from the model, and the server leaves them
out of the listing and refuses them for a client that did not negotiate Apps, so they add nothing to a model's
context. Everything they return or touch goes through the guard, as for every tool.
"""

from typing import Annotated, Literal

from pydantic import Field

from media_mcp.guard import FolderRef, Guard, GuardError, Root, TrashOutcome, stills
from media_mcp.guard.lean import Lean
from media_mcp.guard.text import quoted
from media_mcp.server.binding import SettingBound
from media_mcp.server.outputs import FileTable
from media_mcp.server.tools.read import Cursor, FileId

PAGE = 40
"""Files per page of the browser."""
THUMBNAIL_PX = 160
"""The long side of a browser thumbnail: a grid tile at twice its CSS size."""


class Browse(Lean):
    """A folder (or the trash) as the media browser shows it."""

    place: Literal["folder", "trash"]
    folder: FolderRef | None = Field(default=None, description="The folder shown (none in the trash).")
    trail: list[FolderRef] = Field(description="From the top down to the folder: a breadcrumb.")
    folders: list[FolderRef] = Field(description="Its subfolders (first page only). Names are user data.")
    files: FileTable
    writable: bool = Field(description="Whether this server moves, renames and trashes (not read-only).")
    message: str


class Thumbnail(Lean):
    id: str
    src: str | None = Field(default=None, description="A data: URL of a small JPEG.")
    note: str | None = Field(default=None, description="Why there is none.")


class Thumbnails(Lean):
    thumbnails: list[Thumbnail]


async def browse_media(
    guard: Guard,
    folder_id: Annotated[
        str | None, Field(min_length=1, max_length=100, description="The folder to open (default: the top).")
    ] = None,
    trash: Annotated[bool, Field(description="Open the trash instead.")] = False,
    cursor: Cursor = None,
) -> Browse:
    """A folder (or the trash) as the media browser shows it: its trail, subfolders and a page of files."""
    limit = PAGE
    writable = not guard.settings.read_only
    if trash:
        if folder_id:
            raise GuardError("give folder_id or trash, not both")
        files = await guard.search_files(
            query=None, folder_id=None, root="TRASH_ROOT", media_types=None, private=None,
            sort_by=None, sort_order=None, limit=limit, cursor=cursor,
        )  # fmt: skip
        folders = [] if cursor else await _folders(guard, None, "TRASH_ROOT")
        message = f"The trash: {len(folders)} folder(s) and {len(files.items)} file(s) shown."
        table = FileTable.of(files.items, None, files.next_cursor)
        return Browse(place="trash", trail=[], folders=folders, files=table, writable=writable, message=message)
    target = guard.default_folder(folder_id)
    trail = await guard.trail(target)
    files = await guard.search_files(
        query=None, folder_id=target, root=None, media_types=None, private=None,
        sort_by="name", sort_order="asc", limit=limit, cursor=cursor,
    )  # fmt: skip
    folders = [] if cursor else await _folders(guard, target, None)
    here = trail[-1]
    path = "/".join(ref.name for ref in trail)
    shown = f"{len(folders)} subfolder(s) and {len(files.items)} file(s) shown"
    message = f"Folder {quoted(here.name)} ({quoted(path)}): {shown}."
    if files.next_cursor:
        message += " More files follow (pass next_cursor as cursor)."
    table = FileTable.of(files.items, None, files.next_cursor)
    return Browse(place="folder", folder=here, trail=trail, folders=folders, files=table, writable=writable,
                  message=message)  # fmt: skip


async def _folders(guard: Guard, parent_id: str | None, root: Root | None) -> list[FolderRef]:
    """The first hundred subfolders of a folder (or folders in the trash), as id and name."""
    page = await guard.search_folders(query=None, parent_id=parent_id, root=root, limit=100, cursor=None)
    return [FolderRef(id=f.id, name=f.name) for f in page.items]


async def browser_thumbnails(
    guard: Guard,
    file_ids: Annotated[list[FileId], Field(min_length=1, max_length=stills.MAX_FILES, description="Files.")],
) -> Thumbnails:
    """Thumbnails for the media browser, as image data (never a link)."""
    previews = await guard.previews(file_ids, size=THUMBNAIL_PX, budget=guard.settings.preview_max_bytes)
    stills_by_id = previews.by_file()
    out = [Thumbnail(id=item.file_id, src=stills_by_id[item.file_id].data_url() if item.shown else None,
                     note=item.note) for item in previews.files]  # fmt: skip
    out += [Thumbnail(id=item.id, note=item.status.replace("_", " ")) for item in previews.not_found]
    return Thumbnails(thumbnails=out)


async def browser_trash(
    guard: Guard,
    file_ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=1000)]] | None,
        Field(description="Files picked."),
        SettingBound("max_length", "max_trash_items"),
    ] = None,
    folder_ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=100)]] | None,
        Field(description="Folders picked."),
        SettingBound("max_length", "max_trash_items"),
    ] = None,
    confirmation_token: Annotated[
        str | None, Field(max_length=512, description="The preview's token, sent on the person's click.")
    ] = None,
) -> TrashOutcome:
    """The media browser's trash: without a token, the preview of all that would go and a token; with the token of
    that preview (sent when the person clicks to confirm), the move, if the content is still what they saw."""
    return await guard.trash(file_ids or [], folder_ids or [], token=confirmation_token, by_app=True)
