"""The guard's reads: every item comes back through the call's views, and every page with a sealed cursor."""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio.to_thread

from media_mcp import errors
from media_mcp.guard import policy, stills
from media_mcp.guard.answers import (
    DownloadGrant,
    DownloadLink,
    FolderNode,
    PreviewItem,
    Previews,
    Progress,
    Root,
    Summary,
    TypeTotal,
)
from media_mcp.guard.base import MAX_WALK_ITEMS, GuardBase, size_text, trashed_error
from media_mcp.guard.call import MAX_DEPTH, Call
from media_mcp.guard.policy import GuardError
from media_mcp.guard.text import clean, quoted, visible
from media_mcp.guard.views import SYSTEM_NAMES, FileView, FolderRef, FolderView, ItemResult, Page, epoch_stamp
from media_mcp.wix import enums
from media_mcp.wix.ids import plain_file_id

if TYPE_CHECKING:
    # the REST shapes, imported at run time only where a call builds a request (see `media_mcp.guard.core`)
    from media_mcp.wix import models as m


MAX_TREE_NODES = 200
MAX_SUMMARY_ITEMS = 100_000
SORT_FIELDS = {"name": "displayName", "updated": "updatedDate", "size": "sizeInBytes"}


class Reads(GuardBase):
    """The guard's reads: searches, details, folder trees, summaries, download links and previews."""

    async def search_folders(
        self, *, query: str | None, parent_id: str | None, root: Root | None, limit: int, cursor: str | None
    ) -> Page[FolderView]:
        from media_mcp.wix import messages as msg
        from media_mcp.wix import models as m

        self._refuse_hidden_root(root)
        filters = {"q": query, "p": parent_id, "r": root}
        async with self._op(f"folder {parent_id}" if parent_id else "the folder search") as op:
            if parent_id:
                await op.folder(parent_id)
                words = (query or "").casefold().split()

                async def fetch(after: str | None, batch: int) -> tuple[list[m.Folder], str | None]:
                    paging = m.CursorPaging(limit=batch, cursor=after)
                    page = await op.client.list_folders(
                        msg.ListFoldersRequest(parent_folder_id=parent_id, paging=paging)
                    )
                    kept = [f for f in page.folders if all(w in f.display_name.casefold() for w in words)]
                    return kept, page.next_cursor.cursors.next or None

            else:

                async def fetch(after: str | None, batch: int) -> tuple[list[m.Folder], str | None]:
                    request = msg.SearchFoldersRequest(
                        search=query or None,
                        root_folder=enums.RootFolder(root or "MEDIA_ROOT"),
                        paging=m.CursorPaging(limit=batch, cursor=after),
                    )
                    page = await op.client.search_folders(request)
                    return page.folders, page.next_cursor.cursors.next or None

            return await self._page("folders", filters, cursor, limit, fetch, op.folder_view)

    async def search_files(
        self,
        *,
        query: str | None,
        folder_id: str | None,
        root: Root | None,
        media_types: list[str] | None,
        private: bool | None,
        sort_by: str | None,
        sort_order: str | None,
        limit: int,
        cursor: str | None,
        recursive: bool = False,
    ) -> Page[FileView]:
        from media_mcp.wix import messages as msg
        from media_mcp.wix import models as m

        self._refuse_hidden_root(root)
        if recursive and not folder_id:
            raise GuardError("recursive needs folder_id (without it, a search already covers every folder)")
        filters = {"q": query, "f": folder_id, "r": root, "m": media_types, "p": private, "s": [sort_by, sort_order],
                   "rc": recursive}  # fmt: skip
        sort = None
        if sort_by or sort_order:
            order = enums.SortOrder.ASC if sort_order == "asc" else enums.SortOrder.DESC
            sort = m.Sorting(field_name=SORT_FIELDS[sort_by or "updated"], order=order)
        async with self._op(f"folder {folder_id}" if folder_id else "the search") as op:
            within: set[str] = set()
            if folder_id:
                await op.folder(folder_id)
                within = {folder_id}
                if recursive:
                    within |= {f.id for f in await self._subtree(op, folder_id)}
            listed = sorted(within)

            async def list_files(
                parent: str | None, after: str | None, batch: int
            ) -> tuple[list[m.FileDescriptor], str | None]:
                page = await op.client.list_files(
                    msg.ListFilesRequest(parent_folder_id=parent, media_types=media_types, private=private, sort=sort,
                                         paging=m.CursorPaging(limit=batch, cursor=after))
                )  # fmt: skip
                return page.files, page.next_cursor.cursors.next or None

            async def list_folder(after: str | None, batch: int) -> tuple[list[m.FileDescriptor], str | None]:
                """The folder's own files, or (recursive, no query) the files of each folder of the tree in turn."""
                if not recursive:
                    return await list_files(folder_id, after, batch)
                index, inner = _tree_cursor(after, listed)
                while index < len(listed):
                    files, following = await list_files(listed[index], inner, batch)
                    if following:
                        return files, json.dumps([listed[index], following])
                    index, inner = index + 1, None
                    if index == len(listed):
                        return files, None
                    if files:
                        return files, json.dumps([listed[index], None])
                return [], None  # the folder it had reached, and every one after it, left the tree

            # a listing goes folder by folder; otherwise (words, or a tree sorted across) it is a search of the site
            # kept to the folder or tree, whose rows the guard mostly drops: read a hundred at a time (`_batch`)
            listing = bool(folder_id and not query and not (recursive and sort is not None))

            async def fetch(after: str | None, batch: int) -> tuple[list[m.FileDescriptor], str | None]:
                if listing:
                    return await list_folder(after, batch)
                page = await op.client.search_files(
                    msg.SearchFilesRequest(search=query or None, root_folder=enums.RootFolder(root or "MEDIA_ROOT"),
                                           media_types=media_types, private=private, sort=sort,
                                           paging=m.CursorPaging(limit=batch, cursor=after))
                )  # fmt: skip
                files = [f for f in page.files if not within or f.parent_folder_id in within]
                return files, page.next_cursor.cursors.next or None

            sparse = bool(within) and not listing
            return await self._page("files", filters, cursor, limit, fetch, op.file_view, sparse=sparse)

    async def _subtree(self, op: Call, top: str) -> list[m.Folder]:
        """Every folder under ``top`` (bounded by `MAX_WALK_ITEMS`)."""
        found: list[m.Folder] = []
        stack = [top]
        while stack:
            async for folder in op.subfolders(stack.pop()):
                found.append(folder)
                stack.append(folder.id)
                if len(found) > MAX_WALK_ITEMS:
                    raise GuardError(f"that folder holds more than {MAX_WALK_ITEMS} folders; search a smaller part")
        return found

    async def get_files(self, ids: Sequence[str]) -> list[FileView]:
        wanted = list(dict.fromkeys(plain_file_id(i) for i in ids))
        async with self._op(f"file {wanted[0]}" if len(wanted) == 1 else "one of the files") as op:
            found = {wanted[0]: await op.file(wanted[0])} if len(wanted) == 1 else await op.files_by_id(wanted)
            views = []
            for file_id in wanted:  # in the order asked, an outside file refused exactly where a missing one would be
                file = found.get(file_id)
                view = await op.file_view(file) if file is not None else None
                if view is None:
                    raise self.missing("file", file_id)
                views.append(view)
            return views

    async def trail(self, folder_id: str) -> list[FolderRef]:
        """The folders from the top down to ``folder_id``, for a breadcrumb. Under a scope it starts at the allowed
        folder that holds it: what lies above is not this server's to show."""
        async with self._op(f"folder {folder_id}") as op:
            current: m.Folder | None = await op.folder(folder_id)
            trail: list[FolderRef] = []
            while current is not None and len(trail) < MAX_DEPTH:
                trail.append(FolderRef(id=current.id, name=clean(current.display_name)))
                if current.id in self.allowed or current.id in SYSTEM_NAMES:
                    break
                current = await op.folder_or_none(current.parent_folder_id or enums.MEDIA_ROOT_ID)
            return trail[::-1]

    async def get_folder(self, folder_id: str, *, depth: int = 0) -> tuple[FolderView, list[FolderNode]]:
        """A folder, and its subfolders ``depth`` levels down (bounded to `MAX_TREE_NODES` in all)."""
        async with self._op(f"folder {folder_id}") as op:
            folder = await op.folder(folder_id)
            view = await op.folder_view(folder)
            if view is None:
                raise self.missing("folder", folder_id)
            budget = [MAX_TREE_NODES]
            tree = await self._tree(op, folder.id, depth, budget) if depth else []
            return view, tree

    async def _tree(self, op: Call, folder_id: str, depth: int, budget: list[int]) -> list[FolderNode]:
        nodes: list[FolderNode] = []
        async for sub in op.subfolders(folder_id):
            if budget[0] == 0:
                nodes.append(FolderNode(id="…", name=f"(more: the tree is cut at {MAX_TREE_NODES} folders)"))
                break
            budget[0] -= 1
            below = await self._tree(op, sub.id, depth - 1, budget) if depth > 1 else None
            nodes.append(FolderNode(id=sub.id, name=clean(sub.display_name), subfolders=below or None))
        return nodes

    async def summarize(self, folder_id: str | None, *, include_trash: bool, progress: Progress | None) -> Summary:
        """Files and bytes by media type, in a folder at any depth or in the whole site (the trash on request)."""
        from media_mcp.wix import messages as msg
        from media_mcp.wix import models as m

        tally = _Tally()
        async with self._op(f"folder {folder_id}" if folder_id else "the site") as op:
            where = await op.ref((await op.folder(folder_id)).id) if folder_id else None
            tops = [folder_id] if folder_id else await op.scope_tops()
            if folder_id or self.scoped:  # a folder, or the folders of the scope: walk them
                for top in tops:
                    async for item in op.walk(top):
                        if not tally.add(item if isinstance(item, m.FileDescriptor) else None):
                            break
                        if progress and tally.seen % 500 == 0:
                            await progress(tally.seen, None)
            else:  # the whole site: page through a search of each tree
                for root in [enums.RootFolder.MEDIA_ROOT] + ([enums.RootFolder.TRASH_ROOT] if include_trash else []):
                    after: str | None = None
                    while tally.complete:
                        page = await op.client.search_files(
                            msg.SearchFilesRequest(root_folder=root, paging=m.CursorPaging(limit=100, cursor=after))
                        )
                        for file in page.files:
                            tally.add(file, trash=root == enums.RootFolder.TRASH_ROOT)
                        if progress:
                            await progress(tally.seen, None)
                        after = page.next_cursor.cursors.next or None
                        if not after:
                            break
        walked = bool(folder_id or self.scoped)
        return tally.summary(where, trash_counted=include_trash and not walked, trash_asked=include_trash,
                             scoped=self.scoped)  # fmt: skip

    async def download_links(
        self,
        ids: Sequence[str],
        *,
        minutes: int | None,
        asset_keys: list[str] | None,
        download_name: str | None,
        inline: bool | None,
    ) -> DownloadGrant:
        """Temporary links for files, each as long as its privacy allows (private ones short), audited one by one."""
        from media_mcp.wix import messages as msg

        wanted = list(dict.fromkeys(plain_file_id(i) for i in ids))
        if not wanted:
            raise GuardError("give file_id or file_ids")
        if len(wanted) > self.settings.max_batch_items:
            raise GuardError(f"at most {self.settings.max_batch_items} files per call; split the request")
        if download_name is not None and len(wanted) > 1:
            raise GuardError("download_name applies to one file; several keep their own names")
        links: list[DownloadLink] = []
        skipped: list[ItemResult] = []
        clamped_any = False
        lives: list[tuple[int, bool]] = []
        disposition = enums.ContentDisposition.INLINE if inline else enums.ContentDisposition.ATTACHMENT
        async with self._op(f"file {wanted[0]}" if len(wanted) == 1 else "one of the files") as op:
            found = await op.files_by_id(wanted) if len(wanted) > 1 else {wanted[0]: await op.file(wanted[0])}
            for file_id in wanted:
                file = found.get(file_id)
                view = await op.file_view(file) if file is not None else None
                if file is None or view is None:
                    skipped.append(ItemResult(id=visible(file_id), kind="file", status="not_found"))
                    continue
                if view.in_trash:
                    if len(wanted) == 1:
                        raise trashed_error(file.id)
                    skipped.append(ItemResult(id=file.id, kind="file", name=view.name, status="refused",
                                              note="in the trash: restore it first"))  # fmt: skip
                    continue
                life, clamped = policy.link_minutes(self.settings, file.private, minutes)
                minted = await op.client.generate_file_download_url(
                    msg.GenerateFileDownloadUrlRequest(
                        file_id=file.id, expiration_in_minutes=life, asset_keys=asset_keys,
                        download_file_name=download_name, content_disposition=disposition,
                    )
                )  # fmt: skip
                expires_at = epoch_stamp(self._clock() + life * 60)
                self.audit.record(
                    "generate_download_url", "minted", files=[file.id], link_minutes=life, expires_at=expires_at,
                    private=file.private, clamped=clamped,
                )  # fmt: skip
                clamped_any |= clamped
                lives.append((life, file.private))
                links.extend(
                    DownloadLink(
                        file_id=file.id,
                        name=view.name,
                        private=file.private,
                        url=link.url,
                        asset_key=link.asset_key,
                        expires_at=expires_at,
                    )  # fmt: skip
                    for link in minted
                )
        if not links:
            return_error = "; ".join(f"{i.id} {i.status.replace('_', ' ')}" for i in skipped)
            raise GuardError(f"no link was made: {return_error}. Find ids with search_files")
        shortest = min(life for life, _ in lives)
        first = min(link.expires_at for link in links)
        return DownloadGrant(
            links=links, not_linked=skipped, expires_at=first, expiration_minutes=shortest, clamped=clamped_any,
            note=self._link_note(lives, first, clamped_any),
        )  # fmt: skip

    async def previews(self, ids: Sequence[str], *, size: int, budget: int) -> Previews:
        """Stills of files, each at most ``size`` px on its long side and all within ``budget`` bytes.

        Public files' stills come from their public URLs; a private file's from a one-minute link to its preview
        asset, minted and audited here and never shown. Files outside the scope are not found, as everywhere.
        """
        wanted = list(dict.fromkeys(plain_file_id(i) for i in ids))
        if not wanted:
            raise GuardError("give file_id or file_ids")
        if len(wanted) > stills.MAX_FILES:
            raise GuardError(f"at most {stills.MAX_FILES} files per preview; split the request")
        items: list[PreviewItem] = []
        shown: list[tuple[str, stills.Still]] = []
        skipped: list[ItemResult] = []
        left = budget
        async with self._op(f"file {wanted[0]}" if len(wanted) == 1 else "one of the files") as op:
            found = await op.files_by_id(wanted) if len(wanted) > 1 else {wanted[0]: await op.file(wanted[0])}
            for index, file_id in enumerate(wanted):
                file = found.get(file_id)
                view = await op.file_view(file) if file is not None else None
                if file is None or view is None:
                    skipped.append(ItemResult(id=visible(file_id), kind="file", status="not_found"))
                    continue
                item = PreviewItem(
                    file_id=file.id, name=view.name, type=view.type, width=view.width, height=view.height,
                    duration_seconds=view.duration_seconds, shown=False,
                )  # fmt: skip
                share = left // (len(wanted) - index)
                try:
                    still = await self._still(op, file, view, size, share)
                except stills.NoStill as exc:
                    item.note = str(exc)
                else:
                    left -= len(still.data)
                    item.shown = True
                    caption = stills.line(item.name, item.type, item.width, item.height, item.duration_seconds)
                    shown.append((caption, still))
                items.append(item)
        if not items:
            return_error = "; ".join(f"{i.id} {i.status.replace('_', ' ')}" for i in skipped)
            raise GuardError(f"nothing to preview: {return_error}. Find ids with search_files")
        answer = Previews(files=items, not_found=skipped)
        answer._stills = shown
        return answer

    async def _still(self, op: Call, file: m.FileDescriptor, view: FileView, size: int, budget: int) -> stills.Still:
        if view.in_trash:
            raise stills.NoStill("in the trash: restore it to preview it")
        if file.operation_status != enums.OperationStatus.READY:
            raise stills.NoStill(f"not ready ({file.operation_status.value}): no still yet")
        source = stills.source_of(file, size)
        if source is None:
            raise stills.NoStill(f"a {view.type.lower()} file has no still")
        url = source.url
        keys = [source.asset_key] if source.asset_key else []
        if source.asset_key == stills.PREVIEW_ASSET and view.type in ("IMAGE", "VECTOR"):
            keys.append(stills.SOURCE_ASSET)  # a service that keeps no preview asset: the image itself, scaled here
        for key in keys:
            try:
                url = await self._preview_link(op, file, key)
                break
            except errors.InvalidRequest:  # the backend has no such asset
                continue
        if url is None:
            raise stills.NoStill("the media service has no still of it")
        try:
            data = await op.client.fetch(url, limit=stills.FETCH_LIMIT)
        except errors.MediaError as exc:
            raise stills.NoStill(f"its still could not be fetched ({exc.code or 'error'})") from exc
        return await anyio.to_thread.run_sync(stills.render, data, size, budget)

    async def _preview_link(self, op: Call, file: m.FileDescriptor, key: str) -> str:
        """A one-minute link to a private file's asset, for the guard's own fetch; audited, never shown."""
        from media_mcp.wix import messages as msg

        life, _ = policy.link_minutes(self.settings, file.private, 1)
        minted = await op.client.generate_file_download_url(
            msg.GenerateFileDownloadUrlRequest(file_id=file.id, expiration_in_minutes=life, asset_keys=[key])
        )
        self.audit.record(
            "preview_files", "minted", files=[file.id], link_minutes=life, asset_key=key,
            expires_at=epoch_stamp(self._clock() + life * 60), private=file.private, clamped=False,
        )  # fmt: skip
        return minted[0].url

    def _link_note(self, lives: list[tuple[int, bool]], first: str, clamped: bool) -> str:
        """The sentence an agent passes on with the links: when they stop working, and why if shorter than asked."""
        private = any(p for _, p in lives)
        if len({life for life, _ in lives}) == 1:
            which = "This link expires" if len(lives) == 1 else "These links expire"
            note = f"{which} at {first} UTC ({lives[0][0]} minutes)."
        else:
            note = f"The first of these links expires at {first} UTC; each link says when it expires."
        if clamped:
            caps = []
            if private:
                caps.append(f"private files' links last at most {self.settings.private_link_max_minutes} minutes")
            if not all(p for _, p in lives):
                caps.append(f"public files' links at most {self.settings.public_link_max_minutes}")
            note = f"Here {' and '.join(caps)}. {note}"
        if private:
            note += " Ask for new links to private files when they are needed."
        return note


@dataclass
class _Tally:
    """Running totals of a summary, bounded by `MAX_SUMMARY_ITEMS` items seen."""

    totals: dict[str, TypeTotal] = field(default_factory=dict)
    trash: TypeTotal = field(default_factory=lambda: TypeTotal(type="TRASH"))
    seen: int = 0
    complete: bool = True

    def add(self, file: m.FileDescriptor | None, *, trash: bool = False) -> bool:
        """Count one item (a folder when ``file`` is None); False once the bound is reached."""
        if file is not None:
            kind = file.media_type.value
            total = self.trash if trash else self.totals.setdefault(kind, TypeTotal(type=kind))
            total.files += 1
            total.bytes += file.size_in_bytes or 0
            total.private_files += int(file.private)
        self.seen += 1
        if self.seen >= MAX_SUMMARY_ITEMS:
            self.complete = False
        return self.complete

    def summary(self, where: FolderRef | None, *, trash_counted: bool, trash_asked: bool, scoped: bool) -> Summary:
        by_type = sorted(self.totals.values(), key=lambda t: -t.bytes)
        files, size = sum(t.files for t in by_type), sum(t.bytes for t in by_type)
        parts = [f"{t.files} {t.type.lower()} file(s), {size_text(t.bytes)}" for t in by_type]
        scope = "In the folders here" if scoped else "On the site"
        if where:
            scope = f"In {quoted(where.name)} (at any depth)"
        message = f"{scope}: {files} file(s), {size_text(size)}" + (f" — {'; '.join(parts)}." if parts else ".")
        if trash_counted:
            message += f" In the trash: {self.trash.files} file(s), {size_text(self.trash.bytes)}."
        elif trash_asked:
            message += " The trash is counted only for the whole site."
        if not self.complete:
            message += f" Counting stopped after {MAX_SUMMARY_ITEMS} items: the figures are a lower bound."
        return Summary(
            folder=where, files=files, bytes=size, by_type=by_type, trash=self.trash if trash_counted else None,
            complete=self.complete, message=message,
        )  # fmt: skip


def _tree_cursor(after: str | None, listed: list[str]) -> tuple[int, str | None]:
    """Where a recursive listing stands in ``listed`` (the tree's folder ids, sorted, as walked in this call): the
    index of the folder it had reached, and the cursor within that folder.

    The position names the folder, not its index, so a tree that changed since the cursor was made cannot shift it
    onto another folder. A folder that has left the tree (trashed, or moved out) is passed over: the listing goes on
    at the next folder in the order, so nothing already listed comes again; past the last one it is over.
    """
    if after is None:
        return 0, None
    folder, inner = json.loads(after)
    index = bisect.bisect_left(listed, folder)
    if index < len(listed) and listed[index] == folder:
        return index, inner
    return index, None
