"""Restores from the trash, and what the guard remembers of the trash to make them exact.

An item this server trashed on its own is remembered with the folder it came from and a fingerprint of how the trash
left it (`views.trash_mark`). Under a folder scope a restore acts only on an item whose fingerprint still matches and
whose origin lies inside the scope; anything else is answered exactly as an id that does not exist. Folders come back
before what they held (parents before children, by the remembered origins), then files, so a restore puts each item
where it was, whatever the order of the ids given.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from media_mcp import errors
from media_mcp.fleet import FleetUnavailable
from media_mcp.guard import policy
from media_mcp.guard.answers import RestoreOutcome
from media_mcp.guard.base import GuardBase, statuses_text
from media_mcp.guard.call import MAX_DEPTH, Call
from media_mcp.guard.policy import GuardError
from media_mcp.guard.store import Origin
from media_mcp.guard.text import clean, quoted, visible
from media_mcp.guard.views import SYSTEM_NAMES, ItemResult, trash_mark
from media_mcp.wix import enums
from media_mcp.wix.ids import plain_file_id

if TYPE_CHECKING:
    # the REST shapes, imported at run time only where a call builds a request (see `media_mcp.guard.core`)
    from media_mcp.wix import models as m

log = logging.getLogger("media_mcp.guard")
SETTLE_SECONDS = (0.5, 1.0, 2.0)
"""Waits before reading again an item a bulk move does not show yet, on Wix (which applies bulk moves asynchronously).
The embedded library applies a move before it answers, so nothing waits there."""
Kind = Literal["file", "folder"]


def binned(item: m.FileDescriptor | m.Folder) -> bool:
    """In the trash: on its own (under the trash root), or taken along by a folder (marked deleted where it was)."""
    return item.state == enums.State.DELETED or item.parent_folder_id == enums.TRASH_ROOT_ID


def alone(item: m.FileDescriptor | m.Folder) -> bool:
    """Trashed on its own (directly under the trash root), not taken along by a folder."""
    return item.parent_folder_id == enums.TRASH_ROOT_ID


@dataclass
class _Ask:
    """One id of a restore request: the item as found, what becomes of it, and what it waits for."""

    kind: Kind
    ident: str
    item: m.FileDescriptor | m.Folder | None
    result: ItemResult
    after: list[str] = field(default_factory=list)
    """Folders trashed on their own between this item and the live folder it returns to: they must come back first."""
    taker: str | None = None
    """For an item taken along by a folder: that folder (it comes back with it, or not at all)."""

    @property
    def ready(self) -> bool:
        return self.result.status == "ready"


class Restore(GuardBase):
    """Restores, and the trash origins that prove where an item came from."""

    def _check_counts(self, files: list[str], folders: list[str]) -> None:
        if not files and not folders:
            raise GuardError("give file_ids and/or folder_ids")
        if len(files) + len(folders) > self.settings.max_trash_items:
            raise GuardError(
                f"at most {self.settings.max_trash_items} items per call (MEDIA_MCP_MAX_TRASH_ITEMS); split the request"
            )

    # --- what the guard remembers of the trash -------------------------------------------------------------

    async def _remember_origins(self, origins: list[tuple[str, str, str, str | None]]) -> None:
        self.store.remember_origins(origins)
        if self.fleet is not None:
            try:
                await self.fleet.remember_origins(origins, self._clock())
            except FleetUnavailable as exc:  # kept here; other replicas answer these items as trashed elsewhere
                log.warning("trash origins kept on this replica only: %s", exc)

    async def _forget_origins(self, item_ids: list[str]) -> None:
        if not item_ids:
            return
        self.store.forget_origins(item_ids)
        if self.fleet is not None:
            with contextlib.suppress(FleetUnavailable):  # a stale origin is never acted on: its fingerprint differs
                await self.fleet.forget_origins(item_ids)

    async def _origin_of(self, item: m.FileDescriptor | m.Folder) -> Origin | None:
        """Where an item trashed on its own came from, unless it changed since this server trashed it (then the
        record is stale and forgotten). An origin without a fingerprint is returned, but proves nothing."""
        found = await self.origin(item.id)
        if found is None:
            return None
        origin = Origin(*found)
        if origin.fingerprint is not None and origin.fingerprint != trash_mark(item):
            await self._forget_origins([item.id])
            return None
        return origin

    async def _ancestors(self, op: Call, start: str | None) -> list[tuple[str, m.Folder | None]]:
        """The folders above an item from ``start`` (its parent, or where it was trashed from), nearest first. Through a
        folder trashed on its own the line goes on where that folder came from, if this server trashed it. It ends at
        the first of the scope's folders: what lies above one is not this server's to read or name."""
        chain: list[tuple[str, m.Folder | None]] = []
        current = start
        while current and current not in SYSTEM_NAMES and len(chain) < MAX_DEPTH:
            if any(current == ident for ident, _ in chain):
                break
            folder = await op.folder_or_none(current)
            chain.append((current, folder))
            if folder is None or current in self.allowed:
                break
            if alone(folder):
                origin = await self._origin_of(folder)
                current = origin.folder if origin else None
            else:
                current = folder.parent_folder_id
        return chain

    async def _taker(self, op: Call, item: m.FileDescriptor | m.Folder) -> m.Folder | None:
        """The folder that took a trashed item along: the nearest folder above it that went to the trash on its own."""
        current, depth = item.parent_folder_id, 0
        while current and current not in SYSTEM_NAMES and depth < MAX_DEPTH:
            folder = await op.folder_or_none(current)
            if folder is None or not binned(folder):
                return None
            if alone(folder):
                return folder
            current, depth = folder.parent_folder_id, depth + 1
        return None

    async def _proof(self, op: Call, item: m.FileDescriptor | m.Folder) -> tuple[Origin | None, list[str]] | None:
        """For an item trashed on its own: its origin and the folders trashed on their own it returns through; None
        when, under a scope, nothing proves it came from inside."""
        origin = await self._origin_of(item)
        chain = await self._ancestors(op, origin.folder if origin else None)
        proven = origin is not None and origin.fingerprint is not None and _reaches_the_scope(chain, self.allowed)
        if self.scoped and not proven:
            return None
        pending: list[str] = []
        for ident, folder in chain:
            if folder is None or not binned(folder):
                break
            if alone(folder):
                pending.append(ident)
        return origin, pending

    async def _settle(
        self,
        op: Call,
        files: Sequence[str],
        folders: Sequence[str],
        landed: Callable[[m.FileDescriptor | m.Folder | None], bool],
        skip: set[str],
    ) -> dict[str, m.FileDescriptor | m.Folder | None]:
        """The items as the backend has them after a bulk move; on Wix, read again (bounded) until each has landed,
        except those in ``skip`` (their move failed). A failed read leaves the items unknown (absent from the
        answer)."""
        seen: dict[str, m.FileDescriptor | m.Folder | None] = {}
        waits = list(SETTLE_SECONDS) if self.kind == "wix" else []
        todo_files, todo_folders = list(files), list(folders)
        while True:
            try:
                found = await op.files_by_id(todo_files) if todo_files else {}
                seen.update((i, found.get(i)) for i in todo_files)
                for folder_id in todo_folders:
                    op.forget(folder_id)
                    seen[folder_id] = await op.folder_or_none(folder_id)
            except errors.MediaError as exc:
                log.warning("could not read back the items of a bulk move: %s", exc)
                return seen
            todo_files = [i for i in todo_files if not landed(seen[i]) and i not in skip]
            todo_folders = [i for i in todo_folders if not landed(seen[i]) and i not in skip]
            if not (todo_files or todo_folders) or not waits:
                return seen
            await self._sleep(waits.pop(0))

    # --- restore -----------------------------------------------------------------------------------------------

    async def restore(self, file_ids: Sequence[str], folder_ids: Sequence[str]) -> RestoreOutcome:
        files = list(dict.fromkeys(plain_file_id(i) for i in file_ids))
        folders = list(dict.fromkeys(folder_ids))
        self._check_counts(files, folders)
        async with self._op("one of the items") as op:
            asks = await self._restore_asks(op, files, folders)
            ready = [a for a in asks if a.ready]
            if not ready:
                items = [a.result for a in asks]
                return RestoreOutcome(
                    status="nothing_to_do", items=items, message="Nothing was restored: " + statuses_text(items) + "."
                )
            failed = await self._send_restores(op, ready)
            ids = {kind: [a.result.id for a in ready if a.kind == kind] for kind in ("file", "folder")}
            back = await self._settle(op, ids["file"], ids["folder"], _restored_ok, set(failed))
            for ask in ready:
                ask.result = await self._restored(op, ask, back, failed)
        done = [a.result for a in asks if a.result.status == "done"]
        if not done and failed:
            self.audit.record("restore_from_trash", "failed", files=ids["file"], folders=ids["folder"])
            raise GuardError(next(iter(failed.values())))
        await self._forget_origins([i.id for i in done])
        items = [a.result for a in asks]
        left = [i for i in items if i.status != "done"]
        self.audit.record(
            "restore_from_trash", "partly_done" if failed else "done",
            files=[i.id for i in done if i.kind == "file"], folders=[i.id for i in done if i.kind == "folder"],
            **({"failed": sorted(failed)} if failed else {}),
        )  # fmt: skip
        where = "; ".join(f"{i.kind} {quoted(i.name or '')} to {quoted(i.folder.name if i.folder else '')}"
                          for i in done)  # fmt: skip
        tail = f" Not restored: {statuses_text(left)}." if left else ""
        return RestoreOutcome(
            status="done" if not left else "partly_done", items=items,
            message=(f"Restored {where}." if done else "Nothing was restored for certain.") + tail,
        )  # fmt: skip

    async def _restore_asks(self, op: Call, files: list[str], folders: list[str]) -> list[_Ask]:
        """Each id asked for, checked on its own, then against the others: what waits for which folder."""
        found = await op.files_by_id(files)
        asks = [_Ask("file", f, found.get(f), _missing("file", f)) for f in files]
        for folder_id in folders:
            folder = None if folder_id in SYSTEM_NAMES else await op.folder_or_none(folder_id)
            asks.append(_Ask("folder", folder_id, folder, _missing("folder", folder_id)))
        for ask in asks:
            await self._check_alone(op, ask)
        coming = {a.result.id for a in asks if a.ready and a.kind == "folder" and a.taker is None}
        while self.scoped:  # under a scope, an item restored before the folder it returns to would land outside
            stuck = [a for a in asks if a.ready and a.taker is None and not set(a.after) <= coming]
            if not stuck:
                break
            for ask in stuck:
                first = await op.ref(next(f for f in ask.after if f not in coming))
                came = f"it came from folder {quoted(first.name)} ({first.id})"
                ask.result = _refused(ask, f"{came}, which is in the trash too: restore that folder with it")
                coming.discard(ask.result.id)
        for ask in asks:
            if ask.ready and ask.taker is not None:
                await self._check_taken(op, ask, coming)
        return asks

    async def _check_alone(self, op: Call, ask: _Ask) -> None:
        """Whether one item may be restored, on its own: it exists, is in the trash, and (under a scope) this server
        trashed it from inside, and nothing changed it since. Every other case under a scope is answered exactly as
        an id that does not exist."""
        item = ask.item
        if item is None:
            return
        name = clean(item.display_name)
        if not binned(item):
            parent = item.parent_folder_id
            if await op.in_scope(parent if ask.kind == "file" else item.id):
                ask.result = ItemResult(id=item.id, kind=ask.kind, name=name, status="not_in_trash",
                                        folder=await op.parent(item))  # fmt: skip
            return
        if not alone(item):  # taken along by a folder: decided once the request's folders are known
            taker = await self._taker(op, item)
            ask.taker = taker.id if taker is not None else None
            if taker is not None or not self.scoped:
                ask.result = ItemResult(id=item.id, kind=ask.kind, name=name, status="ready",
                                        folder=await op.ref(item.parent_folder_id))  # fmt: skip
            return
        proof = await self._proof(op, item)
        if proof is None:
            return
        origin, ask.after = proof
        came_from = await op.ref(origin.folder) if origin else None
        ask.result = ItemResult(id=item.id, kind=ask.kind, name=name, status="ready", folder=came_from)

    async def _check_taken(self, op: Call, ask: _Ask, coming: set[str]) -> None:
        """An item a folder took along comes back with that folder, when the request brings it back too."""
        assert ask.taker is not None
        taker = await op.folder_or_none(ask.taker)
        taker_name = clean(taker.display_name) if taker else ""
        if ask.taker in coming:
            ask.result = ask.result.model_copy(
                update={
                    "note": f"comes back with folder {quoted(taker_name)} ({ask.taker}), which it went to the "
                    "trash with"
                }
            )
            return
        if not self.scoped:
            ask.taker = None  # restored on its own, wherever the media service puts it (the answer says where)
            return
        if taker is not None and await self._proof(op, taker) is not None:
            ask.result = _refused(
                ask, f"it went to the trash with folder {quoted(taker_name)} ({ask.taker}): restore that folder"
            )
            return
        ask.result = _missing(ask.kind, ask.ident)

    async def _send_restores(self, op: Call, ready: list[_Ask]) -> dict[str, str]:
        """Restore folders (outermost first), then files, one call per level; after a failure nothing more is sent.
        Answers why each item that was not (or may not have been) restored was not."""
        sent = {a.result.id: a for a in ready if a.taker is None}
        levels: dict[int, list[str]] = {}
        for ident, ask in sent.items():
            if ask.kind == "folder":
                levels.setdefault(sum(f in sent for f in ask.after), []).append(ident)
        steps: list[tuple[Kind, list[str]]] = [("folder", levels[depth]) for depth in sorted(levels)]
        steps.append(("file", [i for i, a in sent.items() if a.kind == "file"]))
        failed: dict[str, str] = {}
        for kind, ids in steps:
            if not ids:
                continue
            if failed:
                failed.update((i, "not tried after an earlier step failed") for i in ids)
                continue
            try:
                if kind == "folder":
                    await op.client.bulk_restore_folders(ids)
                else:
                    await op.client.bulk_restore_files(ids)
            except errors.MediaError as exc:
                failed.update((i, str(policy.advice(exc, "the restore"))) for i in ids)
        for ask in ready:  # what a folder took along fails with it
            if ask.taker is not None and ask.taker in failed:
                failed[ask.result.id] = failed[ask.taker]
        return failed

    async def _restored(
        self, op: Call, ask: _Ask, back: dict[str, m.FileDescriptor | m.Folder | None], failed: dict[str, str]
    ) -> ItemResult:
        ident = ask.result.id
        if ident not in back:
            return ask.result.model_copy(
                update={"status": "unconfirmed", "note": "it could not be read back; check it with get_file or "
                        "search_folders"}
            )  # fmt: skip
        item = back[ident]
        if item is None:
            return ItemResult(id=visible(ident), kind=ask.kind, status="not_found", note="gone after the restore")
        name = clean(item.display_name)
        if not binned(item):
            return ItemResult(id=ident, kind=ask.kind, name=name, status="done",
                              folder=await op.parent(item), note=ask.result.note)  # fmt: skip
        if ident in failed:
            return ask.result.model_copy(update={"status": "failed", "note": failed[ident]})
        return ItemResult(
            id=ident, kind=ask.kind, name=name, status="unconfirmed",
            note="the media service still shows it in the trash; check again in a moment, or restore the folder it "
            "was trashed with",
        )  # fmt: skip


def _restored_ok(item: m.FileDescriptor | m.Folder | None) -> bool:
    return item is None or not binned(item)


def _missing(kind: Kind, ident: str) -> ItemResult:
    """How an id that names nothing this server may restore is answered (the same whatever the reason)."""
    return ItemResult(id=visible(ident), kind=kind, status="not_found")


def _refused(ask: _Ask, why: str) -> ItemResult:
    return ask.result.model_copy(update={"status": "refused", "note": why})


def _reaches_the_scope(chain: list[tuple[str, m.Folder | None]], allowed: AbstractSet[str]) -> bool:
    """Whether an item's way back (`Restore._ancestors`) ends in one of the scope's folders, live, through folders that
    all still exist: only then does a restore put it back inside. A scope folder deleted for good, or in the trash
    itself, proves nothing (the media service would put the item back elsewhere)."""
    if not chain or any(folder is None for _, folder in chain):
        return False
    ident, top = chain[-1]
    return ident in allowed and top is not None and not binned(top)
