"""The guard's writes: uploads checked against the upload policy, names cleaned, every write audited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from media_mcp.guard import policy
from media_mcp.guard.answers import FileBrief, UpdateOutcome
from media_mcp.guard.base import GuardBase, clean_name, mime_of, statuses_text, trashed_error
from media_mcp.guard.call import MAX_DEPTH, Call
from media_mcp.guard.policy import GuardError
from media_mcp.guard.text import clean_labels, quoted, visible
from media_mcp.guard.views import SYSTEM_NAMES, FileView, FolderView, ItemResult
from media_mcp.wix import enums
from media_mcp.wix.ids import plain_file_id

if TYPE_CHECKING:
    # the REST shapes, imported at run time only where a call builds a request (see `media_mcp.guard.core`)
    from media_mcp.wix import messages as msg


class Writes(GuardBase):
    """The guard's writes: upload links and uploads, new folders, changes to files and folders, imports."""

    async def create_folder(self, *, name: str, parent_id: str | None) -> FolderView:
        folder_name = clean_name(name, "name")
        parent = self.default_folder(parent_id)
        async with self._op(f"folder {parent}") as op:
            await op.folder(parent, target=True)
            folder = await op.client.create_folder(folder_name, parent)
            self.audit.record("create_folder", "done", folders=[folder.id], parent=parent)
            view = await op.folder_view(folder)
            assert view is not None  # created inside an admitted folder
            return view

    async def update_files(
        self,
        ids: Sequence[str],
        *,
        name: str | None = None,
        names: dict[str, str] | None = None,
        folder_id: str | None = None,
        labels: list[str] | None = None,
        add_labels: list[str] | None = None,
        remove_labels: list[str] | None = None,
    ) -> UpdateOutcome:
        """Rename, move or relabel files, each on its own: one that cannot change does not stop the others."""
        from media_mcp.wix import messages as msg

        renames = {plain_file_id(k): clean_name(v, f"the new name of {visible(k)}") for k, v in (names or {}).items()}
        wanted = list(dict.fromkeys([*(plain_file_id(i) for i in ids), *renames]))
        if not wanted:
            raise GuardError("give file_ids (or names)")
        if len(wanted) > self.settings.max_batch_items:
            raise GuardError(f"at most {self.settings.max_batch_items} files per call; split the request")
        if name is not None:
            if len(wanted) > 1:
                raise GuardError("name renames one file; to rename several, give names as {file_id: new name}")
            renames[wanted[0]] = clean_name(name, "name")
        relabel = labels is not None or bool(add_labels) or bool(remove_labels)
        if folder_id is None and not relabel and not renames:
            raise GuardError("give at least one of name (or names), folder_id, labels, add_labels, remove_labels")
        adding, removing = clean_labels(add_labels or []), set(clean_labels(remove_labels or []))
        async with self._op(f"file {wanted[0]}" if len(wanted) == 1 else "one of the files") as op:
            if folder_id is not None:
                await op.folder(folder_id, target=True)
            found = await op.files_by_id(wanted)
            done: list[FileBrief] = []
            skipped: list[ItemResult] = []
            for file_id in wanted:
                file = found.get(file_id)
                view = await op.file_view(file) if file is not None else None
                if file is None or view is None:
                    skipped.append(ItemResult(id=visible(file_id), kind="file", status="not_found"))
                    continue
                if view.in_trash:
                    skipped.append(ItemResult(id=file.id, kind="file", name=view.name, status="refused",
                                              note="in the trash: restore it first"))  # fmt: skip
                    continue
                new_labels = None
                if relabel:
                    base = clean_labels(labels, cap=100) if labels is not None else view.labels
                    new_labels = [x for x in dict.fromkeys([*base, *adding]) if x not in removing][:100]
                change = msg.FileUpdate(
                    id=file.id, display_name=renames.get(file_id), labels=new_labels,
                    parent_folder_id=folder_id if folder_id != file.parent_folder_id else None,
                )  # fmt: skip
                done.append(await self._update_one(op, change, view))
            if done:
                self.audit.record(
                    "update_file", "done", files=[f.id for f in done], renamed=[f.id for f in done if f.id in renames],
                    moved_to=folder_id, relabelled=relabel,
                )  # fmt: skip
        if len(wanted) == 1 and skipped:  # one file asked for: its failure is the answer
            item = skipped[0]
            if item.status == "not_found":
                raise self.missing("file", wanted[0])
            raise trashed_error(item.id)
        message = _update_message(done, skipped, renamed=bool(renames), moved=folder_id is not None, relabelled=relabel)
        status: Literal["done", "partly_done", "nothing_to_do"] = (
            "nothing_to_do" if not done else "partly_done" if skipped else "done"
        )
        return UpdateOutcome(status=status, files=done, not_changed=skipped, message=message)

    async def _update_one(self, op: Call, change: msg.FileUpdate, view: FileView) -> FileBrief:
        """One file's change; a change to nothing (a move to the folder it is in) is not sent."""
        if change.display_name is None and change.parent_folder_id is None and change.labels is None:
            return FileBrief.of(view)
        after = await op.file_view(await op.client.update_file(change))
        assert after is not None  # it stayed in, or moved to, an admitted folder
        return FileBrief.of(after)

    async def update_folder(self, folder_id: str, *, name: str | None, parent_id: str | None) -> FolderView:
        """Rename a folder or move it (with all it holds) under another one."""
        from media_mcp.wix import messages as msg

        if name is None and parent_id is None:
            raise GuardError("give name and/or parent_folder_id")
        new_name = clean_name(name, "name") if name is not None else None
        if folder_id in SYSTEM_NAMES:
            raise GuardError(f"{folder_id!r} is a system folder: it cannot be renamed or moved")
        async with self._op(f"folder {folder_id}") as op:
            folder = await op.folder(folder_id)
            if folder.state == enums.State.DELETED or folder.parent_folder_id == enums.TRASH_ROOT_ID:
                raise GuardError(f"folder {folder.id} is in the trash; restore it first")
            moved_to = parent_id if parent_id not in (None, folder.parent_folder_id) else None
            if moved_to is not None:
                if folder.id in self.allowed:
                    raise GuardError("a root of the folders this server may use cannot be moved from inside them")
                await op.folder(moved_to, target=True)
                if await self._inside(op, moved_to, folder.id):
                    raise GuardError("a folder cannot move into itself or one of its own subfolders")
            updated = await op.client.update_folder(
                msg.FolderUpdate(id=folder.id, display_name=new_name, parent_folder_id=moved_to)
            )
            self.audit.record("update_folder", "done", folders=[folder.id], renamed=new_name is not None,
                              moved_to=moved_to)  # fmt: skip
            op.forget(folder.id)
            view = await op.folder_view(updated)
            assert view is not None  # it stayed in, or moved to, an admitted folder
            return view

    async def _inside(self, op: Call, folder_id: str, ancestor: str) -> bool:
        """Whether ``folder_id`` is ``ancestor`` or lies under it."""
        current: str | None = folder_id
        for _ in range(MAX_DEPTH):
            if current is None or current in SYSTEM_NAMES:
                return False
            if current == ancestor:
                return True
            found = await op.folder_or_none(current)
            current = found.parent_folder_id if found else None
        return True  # deeper than any real tree: refuse rather than risk a cycle

    async def import_file(
        self,
        *,
        url: str,
        name: str | None,
        folder_id: str | None,
        private: bool,
        mime_type: str | None,
        labels: list[str] | None = None,
    ) -> FileView:
        from media_mcp.wix import messages as msg

        if not url.lower().startswith(("http://", "https://")):
            raise GuardError("only http(s) URLs can be imported")
        display = clean_name(name, "name") if name else None
        mime = mime_of(display or url.split("?")[0].rsplit("/", 1)[-1], mime_type)
        if mime_type or mime != "application/octet-stream":
            policy.refuse_upload_type(self.settings, mime)
        target = self.default_folder(folder_id)
        async with self._op(f"folder {target}") as op:
            await op.folder(target, target=True)
            file = await op.client.import_file(
                msg.ImportFileRequest(url=url, display_name=display, parent_folder_id=target, private=private,
                                      mime_type=mime_type, labels=clean_labels(labels) if labels else None)
            )  # fmt: skip
            self.audit.record("import_file", "started", files=[file.id], folders=[target], private=private)
            view = await op.file_view(file)
            assert view is not None
            return view


def _update_message(
    done: list[FileBrief], skipped: list[ItemResult], *, renamed: bool, moved: bool, relabelled: bool
) -> str:
    if not done:
        return f"No file was changed: {statuses_text(skipped)}."
    where = f"moved to {quoted(done[0].folder.name)}"
    what = ", ".join(part for part, on in (("renamed", renamed), (where, moved), ("relabelled", relabelled)) if on)
    message = f"{len(done)} file(s) {what}."
    return message + (f" Not changed: {statuses_text(skipped)}." if skipped else "")
