"""The guard's trash: a plan counts everything it would take, the approval is bound to that content, and every
item's outcome is reported as it is."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from media_mcp import errors
from media_mcp.fleet import FleetUnavailable
from media_mcp.guard.answers import PersonAnswer, RestoreOutcome, TrashOutcome, TrashPlan, Undo
from media_mcp.guard.base import MAX_WALK_ITEMS, GuardBase, size_text, statuses_text
from media_mcp.guard.call import Call
from media_mcp.guard.policy import GuardError
from media_mcp.guard.seal import TOKEN_SECONDS, SealRefused, digest
from media_mcp.guard.text import clean, fence, visible
from media_mcp.guard.views import SYSTEM_NAMES, Content, ItemResult, epoch_stamp, in_trash
from media_mcp.wix import enums
from media_mcp.wix.ids import plain_file_id

if TYPE_CHECKING:
    # the REST shapes, imported at run time only where a call builds a request (see `media_mcp.guard.core`)
    from media_mcp.wix import models as m

log = logging.getLogger("media_mcp.guard")
PREVIEW_NAMES = 20


class Trash(GuardBase):
    """The guard's trash: what a trash would take, its confirmation, the move, and restores."""

    def confirm_mode(self, permanent: bool) -> Literal["auto", "token", "block", "allow"]:
        mode = self.settings.confirm
        if mode == "allow" and permanent:
            return "auto"  # permanent deletion is always confirmed
        return mode

    def _check_counts(self, files: list[str], folders: list[str]) -> None:
        if not files and not folders:
            raise GuardError("give file_ids and/or folder_ids")
        if len(files) + len(folders) > self.settings.max_trash_items:
            raise GuardError(
                f"at most {self.settings.max_trash_items} items per call (MEDIA_MCP_MAX_TRASH_ITEMS); split the request"
            )

    async def plan_trash(self, file_ids: Sequence[str], folder_ids: Sequence[str], *, permanent: bool) -> TrashPlan:
        """Everything the request would move, counted recursively, and a digest of it that approvals bind to."""
        if permanent and not self.settings.allow_permanent_delete:
            raise GuardError("permanent deletion is not enabled on this server; move things to the trash instead")
        files = list(dict.fromkeys(plain_file_id(i) for i in file_ids))
        folders = list(dict.fromkeys(folder_ids))
        self._check_counts(files, folders)
        items: list[ItemResult] = []
        content = Content()
        lines: list[list[Any]] = []
        seen: set[str] = set()
        origins: list[tuple[str, str, str]] = []
        async with self._op("one of the items") as op:
            found = await op.files_by_id(files)
            for file_id in files:
                file = found.get(file_id)
                view = await op.file_view(file) if file is not None else None
                if file is None or view is None:
                    items.append(ItemResult(id=visible(file_id), kind="file", status="not_found"))
                    continue
                status: Literal["ready", "already_in_trash"] = "already_in_trash" if view.in_trash else "ready"
                items.append(ItemResult(id=file.id, kind="file", name=view.name, status=status, size=view.size,
                                        private_files=int(file.private), folder=view.folder))  # fmt: skip
                if status == "ready" and file.id not in seen:
                    seen.add(file.id)
                    _count_file(content, file, lines)
                    origins.append((file.id, "file", file.parent_folder_id or enums.MEDIA_ROOT_ID))
            for folder_id in folders:
                items.append(await self._plan_folder(op, folder_id, content, lines, seen, origins))
        lines.sort(key=lambda line: (line[0], line[1]))
        statuses = sorted([i.kind, i.id, i.status] for i in items)
        return TrashPlan(
            action="delete" if permanent else "trash",
            asked_files=files,
            asked_folders=folders,
            items=items,
            content=content,
            digest=digest([lines, statuses]),
            origins=origins,
        )

    async def _plan_folder(
        self,
        op: Call,
        folder_id: str,
        content: Content,
        lines: list[list[Any]],
        seen: set[str],
        origins: list[tuple[str, str, str]],
    ) -> ItemResult:
        if folder_id in SYSTEM_NAMES:
            return ItemResult(id=folder_id, kind="folder", status="refused", note="a system folder cannot be trashed")
        if folder_id in self.allowed:
            return ItemResult(
                id=folder_id, kind="folder", status="refused",
                note="a root of the folders this server may use cannot be trashed from inside them",
            )  # fmt: skip
        try:
            folder = await op.folder(folder_id)
        except GuardError:
            return ItemResult(id=visible(folder_id), kind="folder", status="not_found")
        view = await op.folder_view(folder)
        assert view is not None
        if view.in_trash:
            return ItemResult(id=folder.id, kind="folder", name=view.name, status="already_in_trash",
                              folder=view.parent)  # fmt: skip
        inside = Content()
        if folder.id not in seen:
            seen.add(folder.id)
            lines.append(["folder", folder.id, folder.parent_folder_id, 0, False])
            await self._walk(op, folder.id, inside, lines, seen)
            origins.append((folder.id, "folder", folder.parent_folder_id or enums.MEDIA_ROOT_ID))
        content.folders += 1 + inside.folders
        content.files += inside.files
        content.bytes += inside.bytes
        content.private_files += inside.private_files
        content.names.extend(inside.names[: max(PREVIEW_NAMES - len(content.names), 0)])
        return ItemResult(
            id=folder.id, kind="folder", name=view.name, status="ready", size=inside.bytes, files=inside.files,
            folders=inside.folders, private_files=inside.private_files, folder=view.parent,
        )  # fmt: skip

    async def _walk(self, op: Call, top: str, content: Content, lines: list[list[Any]], seen: set[str]) -> None:
        """Count everything under ``top`` (bounded), adding a line per item to ``lines``."""
        from media_mcp.wix import models as m

        async for item in op.walk(top):
            if item.id in seen:
                continue
            seen.add(item.id)
            if isinstance(item, m.Folder):
                content.folders += 1
                lines.append(["folder", item.id, item.parent_folder_id, 0, False])
            else:
                _count_file(content, item, lines)
            if content.files + content.folders > MAX_WALK_ITEMS:
                raise GuardError(
                    f"these folders hold more than {MAX_WALK_ITEMS} items; trash smaller parts of them, one call each"
                )

    def describe(self, plan: TrashPlan) -> str:
        """The preview a person reads before agreeing (every name in it is cleaned)."""
        c = plan.content
        verb = "Delete PERMANENTLY (cannot be undone)" if plan.action == "delete" else "Move to the trash"
        private = f", {c.private_files} of them private" if c.private_files else ""
        lines = [f"{verb}: {c.files} file(s) and {c.folders} folder(s) in all, {size_text(c.bytes)}{private}."]
        for item in plan.items:
            if item.status != "ready":
                continue
            if item.kind == "folder":
                lines.append(
                    f"- folder '{item.name}' with {item.files} file(s), {item.folders} subfolder(s), "
                    f"{size_text(item.size or 0)} (id {item.id})"
                )
            else:
                flag = ", private" if item.private_files else ""
                lines.append(f"- file '{item.name}' ({size_text(item.size or 0)}{flag}; id {item.id})")
        if c.names and c.folders:
            more = c.files - len(c.names)
            shown = ", ".join(f"'{n}'" for n in c.names)
            lines.append(f"Inside the folders: {shown}" + (f" and {more} more file(s)" if more > 0 else ""))
        left = [i for i in plan.items if i.status != "ready"]
        for item in left:
            lines.append(f"Not included: {item.kind} {visible(item.id)} ({item.status.replace('_', ' ')})")
        lines.append(f"Check code: {plan.digest[:8]}")
        text: str = fence("\n".join(lines))
        return text

    async def trash(
        self,
        file_ids: Sequence[str],
        folder_ids: Sequence[str],
        *,
        permanent: bool = False,
        token: str | None = None,
        answer: PersonAnswer | None = None,
        by_app: bool = False,
    ) -> TrashOutcome:
        """Preview, or act on an approval bound to exactly the content previewed; never on anything else.

        ``by_app``: the request comes from the media browser, where the person confirms with a click. Its tokens are
        of their own kind (neither kind opens for the other), and it always previews, whatever the mode but block."""
        mode = self.confirm_mode(permanent)
        if mode == "block":
            self.audit.record("move_to_trash", "blocked", files=list(file_ids), folders=list(folder_ids))
            raise GuardError("this server does not move things to the trash (MEDIA_MCP_CONFIRM=block)")
        plan = await self.plan_trash(file_ids, folder_ids, permanent=permanent)
        if not plan.files and not plan.folders:
            return TrashOutcome(
                status="nothing_to_do", permanent=permanent, items=plan.items, content=plan.content,
                message="Nothing was moved: " + statuses_text(plan.items) + ".",
            )  # fmt: skip
        if mode == "allow" and not by_app:
            return await self._act(plan, "policy")
        if answer is not None:
            if not answer.accepted:
                self.audit.record("move_to_trash", "cancelled", files=plan.files, folders=plan.folders,
                                  answer=answer.action)  # fmt: skip
                return TrashOutcome(
                    status="cancelled", permanent=permanent, items=plan.items, content=plan.content,
                    message="The person declined; nothing was moved. Do not retry unasked.",
                )  # fmt: skip
            if answer.shown != plan.digest:
                await self._mark_epoch()
                return self._preview(plan, changed=True)
            return await self._act(plan, "human")
        if token:
            try:
                approved, signature, expires = self._tokens.open(
                    token, _token_action(plan, by_app), plan.asked_files, plan.asked_folders, self._clock()
                )
            except SealRefused as exc:
                self.audit.record("move_to_trash", "token_refused", files=plan.files, folders=plan.folders)
                raise GuardError(str(exc)) from None
            if approved != plan.digest:
                await self._mark_epoch()
                return self._preview(plan, changed=True, by_app=by_app)
            if not await self._claim(signature, expires, plan):
                self.audit.record("move_to_trash", "token_refused", files=plan.files, folders=plan.folders)
                raise GuardError(
                    "the confirmation_token was already used; call again without it and ask the user again"
                )
            try:
                return await self._act(plan, "app" if by_app else "token")
            except BaseException:
                await self._release(signature)
                raise
        await self._mark_epoch()
        return self._preview(plan, changed=False, by_app=by_app)

    async def _claim(self, signature: str, expires: float, plan: TrashPlan) -> bool:
        """Spend a token: across the fleet first (when there is one), then in the data directory."""
        if self.fleet is not None:
            try:
                if not await self.fleet.claim(signature, expires - TOKEN_SECONDS, expires, self._clock()):
                    return False
            except FleetUnavailable as exc:
                self.audit.record("move_to_trash", "token_unproven", files=plan.files, folders=plan.folders)
                raise GuardError(
                    f"nothing was done: the confirmation_token cannot be proven unused, because {exc}; try again in "
                    "a moment with the same arguments (if this persists, call again without the token and ask the "
                    "user again)"
                ) from None
        if self.store.claim_token(signature, expires):
            return True
        await self._release(signature, local=False)
        return False

    async def _mark_epoch(self) -> None:
        if self.fleet is not None:
            with contextlib.suppress(FleetUnavailable):  # then the claim says so, when the token comes back
                await self.fleet.mark_epoch(self._clock())

    async def _release(self, signature: str, *, local: bool = True) -> None:
        if local:
            self.store.release_token(signature)
        if self.fleet is not None:
            with contextlib.suppress(FleetUnavailable):  # it then stays spent until it expires: safe
                await self.fleet.release(signature)

    async def _remember_origins(self, origins: list[tuple[str, str, str]]) -> None:
        self.store.remember_origins(origins)
        if self.fleet is not None:
            try:
                await self.fleet.remember_origins(origins, self._clock())
            except FleetUnavailable as exc:  # kept here; other replicas answer these items as trashed elsewhere
                log.warning("trash origins kept on this replica only: %s", exc)

    async def _forget_origins(self, item_ids: list[str]) -> None:
        self.store.forget_origins(item_ids)
        if self.fleet is not None:
            with contextlib.suppress(FleetUnavailable):  # a stale origin of a restored item is never read
                await self.fleet.forget_origins(item_ids)

    def _preview(self, plan: TrashPlan, *, changed: bool, by_app: bool = False) -> TrashOutcome:
        """A preview with a token for exactly ``plan`` (callers first `_mark_epoch`, for a fleet)."""
        token, expires = self._tokens.mint(
            _token_action(plan, by_app), plan.asked_files, plan.asked_folders, plan.digest, self._clock()
        )
        what = "delete these permanently" if plan.action == "delete" else "move these to the trash"
        message = (
            f"Show this preview to the user: {self.describe(plan)}\nOnly if they agree, call again with the same ids "
            f"and this confirmation_token to {what}."
        )
        if changed:
            self.audit.record("move_to_trash", "changed", files=plan.files, folders=plan.folders)
            message = "What these items hold changed since the user saw the preview; nothing was done. " + message
        return TrashOutcome(
            status="changed" if changed else "confirmation_required", permanent=plan.action == "delete",
            items=plan.items, content=plan.content, confirmation_token=token, expires_at=epoch_stamp(expires),
            message=message,
        )  # fmt: skip

    async def _act(self, plan: TrashPlan, how: str) -> TrashOutcome:
        permanent = plan.action == "delete"
        try:
            async with self._op("one of the items") as op:
                if plan.files:
                    await op.client.bulk_delete_files(plan.files, permanent=permanent)
                if plan.folders:
                    await op.client.bulk_delete_folders(plan.folders, permanent=permanent)
                    for folder_id in plan.folders:
                        op.forget(folder_id)
        except GuardError:
            self.audit.record("move_to_trash", "failed", files=plan.files, folders=plan.folders, permanent=permanent)
            raise
        if not permanent:
            await self._remember_origins(plan.origins)
        c = plan.content
        self.audit.record(
            "move_to_trash", "done", files=plan.files, folders=plan.folders, permanent=permanent, confirmed_by=how,
            content_files=c.files, content_folders=c.folders, content_bytes=c.bytes,
        )  # fmt: skip
        items = [i.model_copy(update={"status": "done"}) if i.status == "ready" else i for i in plan.items]
        moved = f"{c.files} file(s) and {c.folders} folder(s) in all, {size_text(c.bytes)}"
        left = [i for i in plan.items if i.status != "ready"]
        tail = f" Not included: {statuses_text(left)}." if left else ""
        if permanent:
            return TrashOutcome(
                status="done", permanent=True, items=items, content=c,
                message=f"Deleted permanently: {moved}. This cannot be undone.{tail}",
            )  # fmt: skip
        undo = Undo(file_ids=plan.files, folder_ids=plan.folders)
        return TrashOutcome(
            status="done", items=items, content=c, undo=undo,
            message=f"Moved to the trash: {moved}. To undo: restore_from_trash(file_ids={plan.files!r}, "
            f"folder_ids={plan.folders!r}).{tail}",
        )  # fmt: skip

    async def restore(self, file_ids: Sequence[str], folder_ids: Sequence[str]) -> RestoreOutcome:
        files = list(dict.fromkeys(plain_file_id(i) for i in file_ids))
        folders = list(dict.fromkeys(folder_ids))
        self._check_counts(files, folders)
        results: dict[tuple[str, str], ItemResult] = {}
        restorable: dict[str, list[str]] = {"file": [], "folder": []}
        async with self._op("one of the items") as op:
            found = await op.files_by_id(files)
            for file_id in files:
                file = found.get(file_id)
                in_bin = file is not None and in_trash(file)
                parent = file.parent_folder_id if file is not None else None
                results["file", file_id] = await self._restore_check(
                    op, "file", file_id, file.display_name if file else None, file is not None, in_bin, parent
                )
            for folder_id in folders:
                folder = None if folder_id in SYSTEM_NAMES else await op.folder_or_none(folder_id)
                in_bin = folder is not None and (folder.state == enums.State.DELETED)
                parent = folder.parent_folder_id if folder is not None else None
                results["folder", folder_id] = await self._restore_check(
                    op, "folder", folder_id, folder.display_name if folder else None, folder is not None, in_bin,
                    parent,
                )  # fmt: skip
            for (kind, ident), result in results.items():
                if result.status == "ready":
                    restorable[kind].append(ident)
            if not restorable["file"] and not restorable["folder"]:
                items = list(results.values())
                return RestoreOutcome(
                    status="nothing_to_do", items=items, message="Nothing was restored: " + statuses_text(items) + "."
                )
            try:
                if restorable["file"]:
                    await op.client.bulk_restore_files(restorable["file"])
                if restorable["folder"]:
                    await op.client.bulk_restore_folders(restorable["folder"])
            except errors.MediaError:
                self.audit.record("restore_from_trash", "failed", files=restorable["file"],
                                  folders=restorable["folder"])  # fmt: skip
                raise
            self.audit.record("restore_from_trash", "done", files=restorable["file"], folders=restorable["folder"])
            await self._forget_origins(restorable["file"] + restorable["folder"])
            back = await op.files_by_id(restorable["file"])
            for file_id in restorable["file"]:
                after = back.get(file_id)
                results["file", file_id] = await self._restored("file", file_id, after, op)
            for folder_id in restorable["folder"]:
                op.forget(folder_id)
                results["folder", folder_id] = await self._restored(
                    "folder", folder_id, await op.folder_or_none(folder_id), op
                )
        items = list(results.values())
        done = [i for i in items if i.status == "done"]
        where = "; ".join(f"{i.kind} '{i.name}' to '{i.folder.name if i.folder else ''}'" for i in done)
        left = [i for i in items if i.status != "done"]
        tail = f" Not restored: {statuses_text(left)}." if left else ""
        return RestoreOutcome(
            status="done" if not left else "partly_done", items=items, message=f"Restored {where}.{tail}"
        )

    async def _restore_check(
        self, op: Call, kind: Literal["file", "folder"], ident: str, name: str | None, exists: bool, in_bin: bool,
        parent: str | None,
    ) -> ItemResult:  # fmt: skip
        """Whether one item may be restored: it exists, is in the trash, and (under a scope) was trashed from it."""
        if not exists:
            return ItemResult(id=visible(ident), kind=kind, status="not_found")
        if not in_bin:
            if not await op.in_scope(parent if kind == "file" else ident):
                return ItemResult(id=visible(ident), kind=kind, status="not_found")
            return ItemResult(id=ident, kind=kind, name=clean(name), status="not_in_trash",
                              folder=await op.ref(parent) if await op.in_scope(parent) else None)  # fmt: skip
        origin = await self.origin(ident)
        if self.scoped and (origin is None or not await op.in_scope(origin[0])):
            return ItemResult(id=visible(ident), kind=kind, status="not_found")  # exactly as a missing one
        came_from = await op.ref(origin[0]) if origin else None
        return ItemResult(id=ident, kind=kind, name=clean(name), status="ready", folder=came_from)

    async def _restored(
        self, kind: Literal["file", "folder"], ident: str, item: m.FileDescriptor | m.Folder | None, op: Call
    ) -> ItemResult:
        if item is None:
            return ItemResult(id=visible(ident), kind=kind, status="not_found", note="gone after the restore")
        from media_mcp.wix import models as m

        still = in_trash(item) if isinstance(item, m.FileDescriptor) else item.state == enums.State.DELETED
        if still:
            return ItemResult(
                id=ident, kind=kind, name=clean(item.display_name), status="refused",
                note="the media service left it in the trash; restore the folder it was trashed with",
            )  # fmt: skip
        return ItemResult(
            id=ident,
            kind=kind,
            name=clean(item.display_name),
            status="done",
            folder=await op.parent(item),
        )


def _token_action(plan: TrashPlan, by_app: bool) -> str:
    """What a confirmation token is for: the plan's action, and whether the media browser asked (its own kind)."""
    return f"app:{plan.action}" if by_app else plan.action


def _count_file(content: Content, file: m.FileDescriptor, lines: list[list[Any]]) -> None:
    content.files += 1
    content.bytes += file.size_in_bytes or 0
    content.private_files += file.private
    if len(content.names) < PREVIEW_NAMES:
        content.names.append(clean(file.display_name))
    lines.append(["file", file.id, file.parent_folder_id, file.size_in_bytes or 0, file.private])
