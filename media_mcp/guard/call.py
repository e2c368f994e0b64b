"""One guarded call's view of the backend: the adapter with the folder scope, and one folder cache for the call.

Ids going in are checked by `Call.file`/`Call.folder`, which answer an outside item exactly as a missing one; items
come back out only as views built by `Call.file_view`/`Call.folder_view`, which check the scope and clean every
string. `FolderNames` keeps the folders named in recent answers (without a folder scope), across calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

from media_mcp import errors
from media_mcp.guard.policy import GuardError
from media_mcp.guard.text import clean
from media_mcp.guard.views import (
    SYSTEM_NAMES,
    FileView,
    FolderRef,
    FolderView,
    epoch_stamp,
    in_trash,
    stamp,
    trash_mark,
)
from media_mcp.wix import enums
from media_mcp.wix.ids import plain_file_id

if TYPE_CHECKING:
    # the REST shapes, imported at run time only where a call builds a request (see `media_mcp.guard.core`)
    from media_mcp.guard.base import GuardBase
    from media_mcp.wix import models as m
    from media_mcp.wix.client import WixMediaClient

MAX_DEPTH = 64
PATH_DEPTH = 4
FOLDER_NAME_SECONDS = 30.0
"""How long a folder read in one call names it in the next ones (no scope; see `FolderNames`)."""
FOLDER_NAMES_LIMIT = 2000


# --- one call's view of the backend ---------------------------------------------------------------


class FolderNames:
    """Folders recently read, kept `FOLDER_NAME_SECONDS` to name them (and their paths) in answers without a
    scope. Never read for a decision: scope checks, targets and trash plans read the backend in the call itself.
    Any folder change through this server clears it; a change made elsewhere (the Wix dashboard, another replica)
    shows in names within `FOLDER_NAME_SECONDS`."""

    def __init__(self, *, clock: Callable[[], float], limit: int = FOLDER_NAMES_LIMIT) -> None:
        self._clock = clock
        self._limit = limit
        self._folders: dict[str, tuple[float, m.Folder]] = {}

    def get(self, folder_id: str) -> m.Folder | None:
        found = self._folders.get(folder_id)
        if found is None:
            return None
        if self._clock() >= found[0]:
            del self._folders[folder_id]
            return None
        return found[1]

    def put(self, folder: m.Folder) -> None:
        self._folders.pop(folder.id, None)
        if len(self._folders) >= self._limit:  # the oldest goes first (dicts keep insertion order)
            del self._folders[next(iter(self._folders))]
        self._folders[folder.id] = (self._clock() + FOLDER_NAME_SECONDS, folder)

    def clear(self) -> None:
        self._folders.clear()


class Call:
    """The adapter for one guarded call, with the folder scope and a folder cache shared by its checks."""

    def __init__(self, guard: GuardBase, client: WixMediaClient) -> None:
        self.guard = guard
        self.client = client
        self._folders: dict[str, m.Folder | None] = {}
        self._refs: dict[str, FolderRef] = {}

    async def _folder(self, folder_id: str) -> m.Folder | None:
        """A folder as the backend has it now (once per call): what every check and decision reads."""
        from media_mcp.wix import models as m

        if folder_id in SYSTEM_NAMES:
            return m.Folder(id=folder_id, display_name=SYSTEM_NAMES[folder_id])
        if folder_id not in self._folders:
            try:
                folder: m.Folder | None = await self.client.get_folder(folder_id)
            except errors.NotFound:
                folder = None
            self._folders[folder_id] = folder
            if folder is not None and not self.guard.scoped:
                self.guard.names.put(folder)
        return self._folders[folder_id]

    async def _named(self, folder_id: str) -> m.Folder | None:
        """A folder to name in an answer. Without a folder scope it may come from the guard's `FolderNames` (a few
        seconds old at most); under a scope it is always `_folder`, so no answer rests on a stale ancestry."""
        if not self.guard.scoped and folder_id not in self._folders:
            cached = self.guard.names.get(folder_id)
            if cached is not None:
                return cached
        return await self._folder(folder_id)

    async def folder_or_none(self, folder_id: str) -> m.Folder | None:
        """A folder by id, whatever the scope (for walks that callers bound by it), or None."""
        return await self._folder(folder_id)

    async def subfolders(self, folder_id: str) -> AsyncIterator[m.Folder]:
        """The folders directly in a folder, every page of them."""
        from media_mcp.wix import messages as msg
        from media_mcp.wix import models as m

        after: str | None = None
        while True:
            paging = m.CursorPaging(limit=100, cursor=after)
            page = await self.client.list_folders(msg.ListFoldersRequest(parent_folder_id=folder_id, paging=paging))
            for folder in page.folders:
                yield folder
            after = page.next_cursor.cursors.next or None
            if not after:
                return

    async def files_in(self, folder_id: str) -> AsyncIterator[m.FileDescriptor]:
        """The files directly in a folder, every page of them."""
        from media_mcp.wix import messages as msg
        from media_mcp.wix import models as m

        after: str | None = None
        while True:
            paging = m.CursorPaging(limit=100, cursor=after)
            page = await self.client.list_files(msg.ListFilesRequest(parent_folder_id=folder_id, paging=paging))
            for file in page.files:
                yield file
            after = page.next_cursor.cursors.next or None
            if not after:
                return

    async def walk(self, top: str) -> AsyncIterator[m.Folder | m.FileDescriptor]:
        """Every folder and file under ``top``, at any depth (callers bound how far they go)."""
        stack = [top]
        while stack:
            current = stack.pop()
            async for folder in self.subfolders(current):
                stack.append(folder.id)
                yield folder
            async for file in self.files_in(current):
                yield file

    def forget(self, folder_id: str) -> None:
        """Drop a folder from this call's cache after it changed, and every name the guard keeps (paths below it
        name it too)."""
        self._folders.pop(folder_id, None)
        self._refs.clear()
        self.guard.names.clear()

    async def in_scope(self, folder_id: str | None) -> bool:
        """Whether a folder lies inside the scope (always, without one)."""
        allowed = self.guard.allowed
        if not allowed:
            return True
        current, depth = folder_id, 0
        while current and depth < MAX_DEPTH:
            if current in allowed:
                return True
            if current in SYSTEM_NAMES:
                return False
            folder = await self._folder(current)
            if folder is None:
                return False
            current, depth = folder.parent_folder_id, depth + 1
        return False

    async def _binned(self, folder_id: str) -> bool:
        folder = await self._folder(folder_id)
        return folder is not None and (
            folder.state == enums.State.DELETED or folder.parent_folder_id == enums.TRASH_ROOT_ID
        )

    async def scope_tops(self) -> list[str]:
        """The scope's folders that lie inside no other of them: a walk over the whole scope starts at each once."""
        tops = []
        for folder_id in sorted(self.guard.allowed):
            folder = await self._folder(folder_id)
            if folder is not None and not await self.in_scope(folder.parent_folder_id):
                tops.append(folder_id)
        return tops

    async def ref(self, folder_id: str | None) -> FolderRef:
        """How answers name a folder (once per call: a page of files mostly shares a few folders). Under a scope a
        live folder outside it has no name to give: it is refused as missing, so no answer can name one (the parent
        of an allowed folder included: callers that may meet one check `in_scope` first). A folder in the trash is
        outside every scope by position; only the restore names one, for an item it proved was trashed from inside."""
        ident = folder_id or enums.MEDIA_ROOT_ID
        if ident not in self._refs and not await self.in_scope(ident) and not await self._binned(ident):
            raise self.guard.missing("folder", ident)
        if ident not in self._refs:
            folder = await self._named(ident)
            name = clean(folder.display_name) if folder else ""
            self._refs[ident] = FolderRef(id=ident, name=name, path=await self.path(folder))
        return self._refs[ident]

    async def parent(self, item: m.Folder | m.FileDescriptor) -> FolderRef | None:
        """The folder that holds an item, to name in an answer; None at the top, and above a scope's root."""
        above = item.parent_folder_id
        return await self.ref(above) if above and await self.in_scope(above) else None

    async def path(self, folder: m.Folder | None) -> str | None:
        """Where a folder sits, as names from the top down ('Clients/Acme/2024'), or None for a top-level or
        system folder. Under a scope it starts at the allowed folder: names above it are not the agent's to see."""
        names: list[str] = []
        current = folder
        while current is not None and current.id not in SYSTEM_NAMES:
            if len(names) == PATH_DEPTH:
                names.append("…")
                break
            names.append(clean(current.display_name))
            if current.id in self.guard.allowed or not current.parent_folder_id:
                break
            current = await self._named(current.parent_folder_id)
        return "/".join(reversed(names)) if len(names) > 1 else None

    async def trashed(self, item: m.FileDescriptor | m.Folder) -> tuple[FolderRef, str] | None:
        """Where an item in the trash came from and when it went, if this server trashed it (and nobody has moved it
        since: see `views.trash_mark`)."""
        origin = await self.guard.origin(item.id)
        if origin is None or origin[2] != trash_mark(item) and (origin[2] is not None or self.guard.scoped):
            return None  # changed since; or, under a scope, kept before marks were (it proves nothing)
        if self.guard.scoped and not await self.in_scope(origin[0]):
            return None  # a folder outside, or in the trash itself: not this server's to name
        return await self.ref(origin[0]), epoch_stamp(origin[1])

    # ids in

    async def file(self, raw_id: str) -> m.FileDescriptor:
        """A file the scope admits; an outside file is refused exactly as a missing one."""
        file_id = plain_file_id(raw_id)
        try:
            file = await self.client.get_file(file_id)
        except errors.NotFound:
            raise self.guard.missing("file", file_id) from None
        if not await self.in_scope(file.parent_folder_id):
            raise self.guard.missing("file", file_id)
        return file

    async def folder(self, folder_id: str, *, target: bool = False) -> m.Folder:
        """A folder the scope admits (``target``: one to write into, so not the trash or visitor uploads)."""
        if target and folder_id in (enums.TRASH_ROOT_ID, enums.VISITOR_UPLOADS_ID):
            raise GuardError(f"{folder_id!r} is a system folder: nothing can be put there directly")
        folder = await self._folder(folder_id)
        if folder is None or folder.state == enums.State.DELETED and target or not await self.in_scope(folder_id):
            raise self.guard.missing("folder", folder_id)
        return folder

    async def files_by_id(self, ids: Sequence[str]) -> dict[str, m.FileDescriptor]:
        """The files that exist among ``ids`` (outside ones included: callers check the scope)."""
        found: dict[str, m.FileDescriptor] = {}
        ids = [i for i in ids if i.strip()]  # a blank id names no file
        for start in range(0, len(ids), 100):
            chunk = list(ids[start : start + 100])
            try:
                found.update((f.id, f) for f in await self.client.get_files(chunk))
            except (errors.NotFound, errors.InvalidRequest):  # one of them is missing: ask one by one
                for file_id in chunk:
                    try:
                        found[file_id] = await self.client.get_file(file_id)
                    except errors.NotFound:
                        continue
        return found

    # items out

    async def file_view(self, file: m.FileDescriptor) -> FileView | None:
        if not await self.in_scope(file.parent_folder_id):
            return None
        trashed = await self.trashed(file) if in_trash(file) else None
        return FileView.of(file, await self.ref(file.parent_folder_id), trashed)

    async def folder_view(self, folder: m.Folder) -> FolderView | None:
        if not await self.in_scope(folder.id):
            return None
        parent = await self.parent(folder)
        binned = folder.state == enums.State.DELETED or folder.parent_folder_id == enums.TRASH_ROOT_ID
        trashed = await self.trashed(folder) if binned else None
        return FolderView(
            id=folder.id,
            name=clean(folder.display_name),
            parent=parent,
            path=await self.path(folder),
            updated=stamp(folder.updated_date),
            in_trash=binned,
            trashed_from=trashed[0] if trashed else None,
            trashed_at=trashed[1] if trashed else None,
        )

    async def admitted_files(self, files: Sequence[m.FileDescriptor]) -> list[FileView]:
        views = [await self.file_view(f) for f in files]
        return [v for v in views if v is not None]
