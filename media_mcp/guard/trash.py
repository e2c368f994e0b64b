"""The guard's trash: a plan counts everything it would take, the approval is bound to that content, and every
item's outcome is reported as it is."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from media_mcp import errors
from media_mcp.fleet import FleetUnavailable
from media_mcp.guard import policy
from media_mcp.guard.answers import PersonAnswer, TrashOutcome, TrashPlan, Undo
from media_mcp.guard.base import MAX_WALK_ITEMS, size_text, statuses_text
from media_mcp.guard.call import Call
from media_mcp.guard.policy import GuardError
from media_mcp.guard.restore import Restore, binned
from media_mcp.guard.seal import TOKEN_SECONDS, SealRefused, digest
from media_mcp.guard.text import clean, fence, quoted, visible
from media_mcp.guard.views import SYSTEM_NAMES, Content, ItemResult, epoch_stamp, trash_mark
from media_mcp.wix import enums
from media_mcp.wix.ids import plain_file_id

if TYPE_CHECKING:
    # the REST shapes, imported at run time only where a call builds a request (see `media_mcp.guard.core`)
    from media_mcp.wix import models as m

PREVIEW_NAMES = 20
Outcome = Literal["done", "failed", "unconfirmed"]


@dataclass
class _Budget:
    """The items the walks of one call have visited: one bound for the whole call, however many folders it asks."""

    visited: int = 0

    def spend(self) -> None:
        self.visited += 1
        if self.visited > MAX_WALK_ITEMS:
            raise GuardError(
                f"the folders of this request hold more than {MAX_WALK_ITEMS} items in all; trash smaller parts of "
                "them, fewer per call"
            )


@dataclass
class _Tree:
    """One asked folder as walked: the folder, everything below it, and a root of the scope if one lies there."""

    folder: m.Folder
    entries: list[m.Folder | m.FileDescriptor] = field(default_factory=list)
    root: m.Folder | None = None

    def holdings(self, folder_id: str) -> Content:
        """What a folder of this tree holds, at any depth (not counting itself)."""
        from media_mcp.wix import models as m

        below: dict[str | None, list[m.Folder | m.FileDescriptor]] = {}
        for entry in self.entries:
            below.setdefault(entry.parent_folder_id, []).append(entry)
        content, stack = Content(), [folder_id]
        while stack:
            for entry in below.get(stack.pop(), []):
                if isinstance(entry, m.Folder):
                    content.folders += 1
                    stack.append(entry.id)
                else:
                    _count_file(content, entry)
        return content

    def lines(self) -> list[list[Any]]:
        from media_mcp.wix import models as m

        return [_line(e) if isinstance(e, m.FileDescriptor) else _folder_line(e) for e in [self.folder, *self.entries]]


class Trash(Restore):
    """The guard's trash: what a trash would take, its confirmation, the move, and restores."""

    def confirm_mode(self, permanent: bool) -> Literal["auto", "token", "block", "allow"]:
        mode = self.settings.confirm
        if mode == "allow" and permanent:
            return "auto"  # permanent deletion is always confirmed
        return mode

    async def plan_trash(self, file_ids: Sequence[str], folder_ids: Sequence[str], *, permanent: bool) -> TrashPlan:
        """Everything the request would move, counted recursively and once, and a digest of all the person is shown
        (names, sizes, privacy, what each folder holds) that approvals bind to."""
        if permanent and not self.settings.allow_permanent_delete:
            raise GuardError("permanent deletion is not enabled on this server; move things to the trash instead")
        files = list(dict.fromkeys(plain_file_id(i) for i in file_ids))
        folders = list(dict.fromkeys(folder_ids))
        self._check_counts(files, folders)
        plan = TrashPlan(action="delete" if permanent else "trash", asked_files=files, asked_folders=folders,
                         items=[], content=Content(), digest="")  # fmt: skip
        results: dict[tuple[str, str], ItemResult] = {}
        async with self._op("one of the items") as op:
            ready = await self._plan_files(op, files, results)
            trees = await self._plan_folders(op, folders, results, plan)
        taken = {entry.id: top for top, tree in trees.items() for entry in tree.entries}
        lines: list[list[Any]] = []
        for file in ready:
            if file.id in taken:
                plan.inside[file.id] = taken[file.id]
                continue
            plan.files.append(file.id)
            plan.parts[file.id] = _count_file(Content(), file)
            plan.origins[file.id] = file.parent_folder_id or enums.MEDIA_ROOT_ID
            lines.append(_line(file))
        for top, tree in trees.items():
            plan.folders.append(top)
            inner = tree.holdings(top)
            plan.parts[top] = inner.model_copy(update={"folders": inner.folders + 1})
            plan.origins[top] = tree.folder.parent_folder_id or enums.MEDIA_ROOT_ID
            lines.extend(tree.lines())
            results["folder", top] = _holding(results["folder", top], inner)
        for (kind, ident), result in results.items():
            holder = plan.inside.get(result.id)
            if result.status == "ready" and holder is not None:
                held = _holding(result, trees[holder].holdings(result.id)) if kind == "folder" else result
                above = results["folder", holder]
                note = f"inside folder {quoted(above.name)} ({holder}), which goes too: counted with it"
                results[kind, ident] = held.model_copy(update={"note": note})
        plan.items = list(results.values())
        plan.content = _total(plan.parts[i] for i in plan.files + plan.folders)
        # the first names of what the folders hold: loose files have lines of their own, and would crowd them out
        plan.content.names = _total(plan.parts[i] for i in plan.folders).names
        lines.sort(key=lambda line: (line[0], line[1]))
        shown = sorted((item.model_dump(mode="json") for item in plan.items), key=lambda i: (i["kind"], i["id"]))
        plan.digest = digest([lines, shown])  # the same set of ids, in any order, gives the same digest
        return plan

    async def _plan_files(
        self, op: Call, files: list[str], results: dict[tuple[str, str], ItemResult]
    ) -> list[m.FileDescriptor]:
        """Each asked file as it is now; the ones that may go."""
        found = await op.files_by_id(files)
        ready: list[m.FileDescriptor] = []
        for file_id in files:
            file = found.get(file_id)
            view = await op.file_view(file) if file is not None else None
            if file is None or view is None:
                results["file", file_id] = ItemResult(id=visible(file_id), kind="file", status="not_found")
                continue
            status: Literal["ready", "already_in_trash"] = "already_in_trash" if view.in_trash else "ready"
            results["file", file_id] = ItemResult(
                id=file.id, kind="file", name=view.name, status=status, size=view.size,
                private_files=int(file.private), folder=view.folder,
            )  # fmt: skip
            if status == "ready":
                ready.append(file)
        return ready

    async def _plan_folders(
        self, op: Call, folders: list[str], results: dict[tuple[str, str], ItemResult], plan: TrashPlan
    ) -> dict[str, _Tree]:
        """The asked folders that go, each walked once (bounded for the whole call): outermost first, and one inside
        another that goes is part of it (``plan.inside``). A folder holding a root of the scope is refused."""
        candidates: dict[str, m.Folder] = {}
        for folder_id in folders:
            results["folder", folder_id], folder = await self._folder_check(op, folder_id)
            if folder is not None:
                candidates[folder.id] = folder
        above: dict[str, list[str]] = {}
        if len(candidates) > 1:
            for folder_id, folder in candidates.items():
                chain = await self._ancestors(op, folder.parent_folder_id)
                above[folder_id] = [ident for ident, _ in chain if ident in candidates]
        budget = _Budget()
        trees: dict[str, _Tree] = {}
        for folder_id in sorted(candidates, key=lambda f: len(above.get(f, []))):
            holders = [a for a in above.get(folder_id, []) if a in trees]
            if holders:
                plan.inside[folder_id] = holders[-1]
                continue
            tree = await self._walk(op, candidates[folder_id], budget)
            if tree.root is not None:
                results["folder", folder_id] = results["folder", folder_id].model_copy(update={
                    "status": "refused",
                    "note": f"it holds folder {quoted(clean(tree.root.display_name))} ({tree.root.id}), a root of the "
                    "folders this server may use, which cannot be trashed from inside them",
                })  # fmt: skip
                continue
            trees[folder_id] = tree
        return trees

    async def _folder_check(self, op: Call, folder_id: str) -> tuple[ItemResult, m.Folder | None]:
        """One asked folder on its own: whether it may go (then the folder too)."""
        if folder_id in SYSTEM_NAMES:
            note = "a system folder cannot be trashed"
            return ItemResult(id=folder_id, kind="folder", status="refused", note=note), None
        if folder_id in self.allowed:
            return ItemResult(
                id=folder_id, kind="folder", status="refused",
                note="a root of the folders this server may use cannot be trashed from inside them",
            ), None  # fmt: skip
        try:
            folder = await op.folder(folder_id)
        except GuardError:
            return ItemResult(id=visible(folder_id), kind="folder", status="not_found"), None
        view = await op.folder_view(folder)
        assert view is not None
        if view.in_trash:
            return ItemResult(id=folder.id, kind="folder", name=view.name, status="already_in_trash",
                              folder=view.parent), None  # fmt: skip
        return ItemResult(id=folder.id, kind="folder", name=view.name, status="ready", folder=view.parent), folder

    async def _walk(self, op: Call, folder: m.Folder, budget: _Budget) -> _Tree:
        """Everything under ``folder``, each item spending the call's budget; it stops at a root of the scope."""
        from media_mcp.wix import models as m

        tree = _Tree(folder)
        async for item in op.walk(folder.id):
            budget.spend()
            if isinstance(item, m.Folder) and item.id in self.allowed:
                tree.root = item
                break
            tree.entries.append(item)
        return tree

    def describe(self, plan: TrashPlan) -> str:
        """The preview a person reads before agreeing (every name in it is cleaned)."""
        c = plan.content
        verb = "Delete PERMANENTLY (cannot be undone)" if plan.action == "delete" else "Move to the trash"
        private = f", {c.private_files} of them private" if c.private_files else ""
        lines = [f"{verb}: {c.files} file(s) and {c.folders} folder(s) in all, {size_text(c.bytes)}{private}."]
        for item in plan.items:
            if item.status != "ready":
                continue
            also = f"; {item.note}" if item.note else ""
            if item.kind == "folder":
                lines.append(
                    f"- folder {quoted(item.name)} with {item.files} file(s), {item.folders} subfolder(s), "
                    f"{size_text(item.size or 0)} (id {item.id}){also}"
                )
            else:
                flag = ", private" if item.private_files else ""
                lines.append(f"- file {quoted(item.name)} ({size_text(item.size or 0)}{flag}; id {item.id}){also}")
        if c.names and c.folders:
            more = sum(plan.parts[i].files for i in plan.folders) - len(c.names)
            shown = ", ".join(quoted(n) for n in c.names)
            lines.append(f"Inside the folders: {shown}" + (f" and {more} more file(s)" if more > 0 else ""))
        for item in plan.items:
            if item.status != "ready":
                why = f": {item.note}" if item.status == "refused" and item.note else ""
                lines.append(f"Not included: {item.kind} {visible(item.id)} ({item.status.replace('_', ' ')}{why})")
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
        """Move what the plan sends, then read it back: each item is reported as the media service shows it."""
        permanent = plan.action == "delete"
        failed: dict[str, str] = {}
        async with self._op("one of the items") as op:
            for kind, ids in (("file", plan.files), ("folder", plan.folders)):
                if not ids:
                    continue
                try:
                    if kind == "file":
                        await op.client.bulk_delete_files(ids, permanent=permanent)
                    else:
                        await op.client.bulk_delete_folders(ids, permanent=permanent)
                except errors.MediaError as exc:
                    failed.update((i, str(policy.advice(exc, f"moving the {kind}s"))) for i in ids)
            landed = _gone if permanent else _in_bin
            after = await self._settle(op, plan.files, plan.folders, landed, set(failed))
        tops = plan.files + plan.folders
        outcome: dict[str, Outcome] = {
            i: "done" if i in after and landed(after[i]) else "failed" if i in failed else "unconfirmed" for i in tops
        }
        done = [i for i in tops if outcome[i] == "done"]
        if not done and len(failed) == len(tops):
            self.audit.record("move_to_trash", "failed", files=plan.files, folders=plan.folders, permanent=permanent)
            raise GuardError(next(iter(failed.values())))
        if not permanent:  # an origin proves where an item came from only with the fingerprint the trash left
            marks = {i: trash_mark(item) for i in done if (item := after[i]) is not None}
            kinds = {i: "file" if i in plan.files else "folder" for i in tops}
            await self._remember_origins(
                [(i, kinds[i], plan.origins[i], marks.get(i)) for i in tops if outcome[i] != "failed"]
            )
        items = [_moved(item, plan, outcome, failed) for item in plan.items]
        c = _total(plan.parts[i] for i in done)
        c.names = _total(plan.parts[i] for i in done if i in plan.folders).names  # as in the preview
        extra = {k: v for k, v in (("failed", sorted(failed)), ("unconfirmed", _ids(outcome, "unconfirmed"))) if v}
        self.audit.record(
            "move_to_trash", "done" if len(done) == len(tops) else "partly_done",
            files=[i for i in plan.files if i in done], folders=[i for i in plan.folders if i in done],
            permanent=permanent, confirmed_by=how, content_files=c.files, content_folders=c.folders,
            content_bytes=c.bytes, **extra,
        )  # fmt: skip
        return TrashOutcome(
            status="done" if len(done) == len(tops) else "partly_done", permanent=permanent, items=items, content=c,
            undo=Undo(file_ids=[i for i in plan.files if i in done], folder_ids=[i for i in plan.folders if i in done])
            if done and not permanent else None,
            message=_done_message(plan, items, c, done),
        )  # fmt: skip


def _token_action(plan: TrashPlan, by_app: bool) -> str:
    """What a confirmation token is for: the plan's action, and whether the media browser asked (its own kind)."""
    return f"app:{plan.action}" if by_app else plan.action


def _count_file(content: Content, file: m.FileDescriptor) -> Content:
    content.files += 1
    content.bytes += file.size_in_bytes or 0
    content.private_files += file.private
    if len(content.names) < PREVIEW_NAMES:
        content.names.append(clean(file.display_name))
    return content


def _line(file: m.FileDescriptor) -> list[Any]:
    """A file as the digest binds it: all the preview says of it, its name included."""
    return ["file", file.id, file.parent_folder_id, file.size_in_bytes or 0, file.private, clean(file.display_name)]


def _folder_line(folder: m.Folder) -> list[Any]:
    return ["folder", folder.id, folder.parent_folder_id, clean(folder.display_name)]


def _holding(result: ItemResult, inner: Content) -> ItemResult:
    """A folder's line with what it holds."""
    return result.model_copy(update={"size": inner.bytes, "files": inner.files, "folders": inner.folders,
                                     "private_files": inner.private_files})  # fmt: skip


def _total(parts: Any) -> Content:
    total = Content()
    for part in parts:
        total.files += part.files
        total.folders += part.folders
        total.bytes += part.bytes
        total.private_files += part.private_files
        total.names.extend(part.names[: max(PREVIEW_NAMES - len(total.names), 0)])
    return total


def _in_bin(item: m.FileDescriptor | m.Folder | None) -> bool:
    return item is not None and binned(item)


def _gone(item: m.FileDescriptor | m.Folder | None) -> bool:
    return item is None


def _ids(outcome: dict[str, Outcome], status: Outcome) -> list[str]:
    return [i for i, s in outcome.items() if s == status]


def _moved(item: ItemResult, plan: TrashPlan, outcome: dict[str, Outcome], failed: dict[str, str]) -> ItemResult:
    """One asked item after the move: as its own move went, or the move of the folder it was in."""
    if item.status != "ready":
        return item
    top = plan.inside.get(item.id, item.id)
    status = outcome[top]
    note = item.note
    if status == "failed":
        note = failed[top] if top == item.id else f"{item.note}; that folder was not moved: {failed[top]}"
    elif status == "unconfirmed":
        gone = "gone" if plan.action == "delete" else "in the trash"
        note = f"the media service took the request but does not show it {gone} yet; check before calling again"
    return item.model_copy(update={"status": status, "note": note})


def _done_message(plan: TrashPlan, items: list[ItemResult], c: Content, done: list[str]) -> str:
    moved = f"{c.files} file(s) and {c.folders} folder(s) in all, {size_text(c.bytes)}"
    files = [i for i in plan.files if i in done]
    folders = [i for i in plan.folders if i in done]
    parts: list[str] = []
    if done and plan.action == "delete":
        parts.append(f"Deleted permanently: {moved} (as counted just before). This cannot be undone.")
    elif done:
        parts.append(
            f"Moved to the trash: {moved} (as counted just before the move). To undo: "
            f"restore_from_trash(file_ids={files!r}, folder_ids={folders!r})."
        )
    tops = set(plan.files + plan.folders)
    for status, label in (("failed", "Not moved"), ("unconfirmed", "Sent, but not confirmed")):
        mine = [i for i in items if i.id in tops and i.status == status]
        if mine:
            parts.append(f"{label}: " + "; ".join(f"{i.kind} {visible(i.id)} ({i.note})" for i in mine) + ".")
    left = [i for i in items if i.status not in ("done", "failed", "unconfirmed")]
    if left:
        parts.append(f"Not included: {statuses_text(left)}.")
    return " ".join(parts)
