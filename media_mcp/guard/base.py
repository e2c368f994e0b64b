"""The guard's state and plumbing: settings, keys, the spent-token store, the audit log, and the guarded call.

Every operation runs through `GuardBase._op`, which hands it a `Call` and turns media failures into errors that say
what to do next; pages of results come back with sealed cursors (`_page`).
"""

from __future__ import annotations

import contextlib
import mimetypes
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
from pydantic import BaseModel, ValidationError

from media_mcp import errors
from media_mcp.fleet import Fleet, FleetUnavailable
from media_mcp.guard import policy
from media_mcp.guard.audit import AuditLog
from media_mcp.guard.backend import Backend
from media_mcp.guard.call import Call, FolderNames
from media_mcp.guard.policy import GuardError
from media_mcp.guard.seal import ConfirmSeal, CursorSeal, SealRefused, digest
from media_mcp.guard.store import GuardStore, Keys, root_secret
from media_mcp.guard.text import clean, visible
from media_mcp.guard.views import ItemResult, Page
from media_mcp.settings import ServerSettings
from media_mcp.wix import enums


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


Raw = TypeVar("Raw", bound=_Identified)
V = TypeVar("V", bound=BaseModel)

MAX_SCAN_PAGES = 5
SCOPED_BATCH = 100
"""Rows per backend request under a folder scope, whatever the page's size (Wix's largest page): the scan reads on
past outside rows, and only a very long run of them can exhaust `MAX_SCAN_PAGES` (see `GuardBase._page`)."""
MAX_WALK_ITEMS = 10_000


def audit_target(settings: ServerSettings, data_dir: Path | None) -> Path | str | None:
    if settings.audit_log in ("stderr", "-"):
        return "stderr"
    if settings.audit_log:
        return Path(settings.audit_log).expanduser()
    return data_dir / "audit.jsonl" if data_dir is not None else None


# --- the guard's plumbing ---------------------------------------------------------------------------


class GuardBase:
    """The guard's state and plumbing: its settings, keys, store, audit log and the guarded call (`_op`)."""

    def __init__(
        self,
        settings: ServerSettings,
        backend: Backend,
        *,
        data_dir: Path | None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        fleet: Fleet | None = None,
    ) -> None:
        self.settings = settings
        self.kind = backend.kind
        self._backend = backend
        self._clock = clock
        self._sleep = sleep
        """How the guard waits (only for Wix to show a bulk move); tests pass one that does not."""
        self.allowed = frozenset(settings.allowed_folder_ids)
        self._private_dirs = [data_dir] if data_dir is not None else []
        """Never uploaded from, whatever the upload roots say: the data directory holds keys and the database."""
        self.audit = AuditLog(audit_target(settings, data_dir), clock=clock)
        secret = settings.confirm_secret.get_secret_value() if settings.confirm_secret else None
        keys = Keys.from_root(root_secret(secret, data_dir))
        self.store = GuardStore(data_dir, clock=clock)
        self.fleet = fleet if fleet is not None else Fleet.from_settings(settings)
        """Where a fleet's replicas record spent tokens (``MEDIA_MCP_REDIS_URL``); None for a lone server."""
        self.names = FolderNames(clock=clock)
        """Folders named in recent answers, so consecutive calls do not look the same folder up again."""
        self._cursors = CursorSeal(keys.cursor, scope=digest(sorted(self.allowed)))
        self._tokens = ConfirmSeal(keys.confirm)

    # --- plumbing -------------------------------------------------------------------------------

    def start(self) -> None:
        """Let the backend start (the server calls this after the handshake, so it never delays it)."""
        self._backend.start()

    async def aclose(self) -> None:
        await self._backend.aclose()
        self.store.close()
        if self.fleet is not None:
            await self.fleet.aclose()

    @property
    def scoped(self) -> bool:
        return bool(self.allowed)

    def missing(self, kind: str, ident: str) -> GuardError:
        where = " (or is outside the folders this server may use)" if self.scoped else ""
        finder = "search_files" if kind == "file" else "search_folders"
        return GuardError(f"{kind} {visible(ident)} was not found{where}. Find ids with {finder}")

    @asynccontextmanager
    async def _op(self, subject: str) -> AsyncIterator[Call]:
        """One guarded call: media failures and refused arguments become errors that say what to do next."""
        try:
            client = await self._backend.client()
            yield Call(self, client.reads_only() if self.settings.read_only else client)
        except errors.MediaError as exc:
            raise policy.advice(exc, visible(subject)) from None
        except ValidationError as exc:  # a request model refused an argument
            fields = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()
            )
            raise GuardError(
                f"{visible(subject)}: an argument does not fit the media API ({visible(fields, 500)}); fix it and "
                "call again"
            ) from None

    def _open_cursor(self, cursor: str | None, kind: str, filters: dict[str, Any]) -> _Position:
        if not cursor:
            return _Position(None, 0, None, None, None)
        try:
            position = self._cursors.open(cursor, kind, filters, self._clock())
        except SealRefused as exc:
            raise GuardError(str(exc)) from None
        if (
            not isinstance(position, list)
            or len(position) != 5
            or not isinstance(position[0], str | None)
            or not isinstance(position[1], int)
            or position[1] < 0
            or not all(isinstance(ident, str | None) for ident in position[2:4])
            or not (isinstance(position[4], int) and 0 < position[4] <= SCOPED_BATCH)
        ):
            raise GuardError("the cursor is not one this server issued; drop the cursor to start a new search")
        return _Position(*position)

    async def _page(
        self,
        kind: str,
        filters: dict[str, Any],
        cursor: str | None,
        limit: int,
        fetch: Callable[[str | None, int], Awaitable[tuple[list[Raw], str | None]]],
        admit: Callable[[Raw], Awaitable[V | None]],
        *,
        sparse: bool = False,
    ) -> Page[V]:
        """Up to ``limit`` admitted items from the backend's pages, and a sealed cursor for exactly the rest.

        The cursor holds the backend page to fetch again (its cursor and size) and where in it to resume (`_Position`:
        by the id of the row it points at, so rows that came or went since do not shift it). Under a
        folder scope a page has a cursor only if an admitted item follows, and the cursor points exactly at it: once
        the page is full the scan reads on, past the rows it holds back (outside the scope, or dropped by the
        search's own filter), to the next admitted item or to the end of the results (then no cursor). So whether a
        cursor comes back does not depend on the rows held back, with one exception: a call reads at most
        `MAX_SCAN_PAGES` backend pages (of `SCOPED_BATCH` rows under a scope), and one that stops there answers a
        cursor to where it stopped, whatever follows. A cursor that leads to no item therefore tells an agent that
        hundreds of held-back rows matched in a row (at least ``(MAX_SCAN_PAGES - 1) * SCOPED_BATCH + 1 - limit``),
        and how long a call takes says, more faintly, how many rows it read; nothing finer.

        Without a scope nothing is held back from the agent, so a page that fills at the end of a backend page gets a
        cursor to the next backend page without reading it (one backend request per page, not two); a search that
        filters rows itself may then end on an empty page.
        """
        at = self._open_cursor(cursor, kind, filters)
        backend_cursor, batch = at.backend_cursor, at.batch or self._batch(limit, sparse)
        items: list[V] = []
        last: str | None = at.after
        for scanned in range(MAX_SCAN_PAGES):
            raw, following = await fetch(backend_cursor, batch)
            for index in range(at.resume_in(raw) if scanned == 0 else 0, len(raw)):
                view = await admit(raw[index])
                if view is None:
                    continue
                if len(items) == limit:  # an admitted item follows the page: the cursor points at it
                    cursor_at = [backend_cursor, index, raw[index].id, last, batch]
                    return Page(items=items, next_cursor=self._seal(kind, filters, cursor_at))
                items.append(view)
                last = raw[index].id
            if not following:
                return Page(items=items, next_cursor=None)
            backend_cursor, batch = following, self._batch(limit, sparse)
            if len(items) == limit and not self.scoped:
                break
        return Page(items=items, next_cursor=self._seal(kind, filters, [backend_cursor, 0, None, last, batch]))

    def _batch(self, limit: int, sparse: bool) -> int:
        """How many rows to ask the backend for at a time: `SCOPED_BATCH` under a scope or where the search drops most
        rows itself (``sparse``: words kept to a folder), else the page's size."""
        return SCOPED_BATCH if self.scoped or sparse else limit

    def _seal(self, kind: str, filters: dict[str, Any], position: list[Any]) -> str:
        return self._cursors.seal(kind, filters, position, self._clock())

    def _refuse_hidden_root(self, root: str | None) -> None:
        if self.scoped and root in ("TRASH_ROOT", "VISITOR_UPLOADS_ROOT"):
            raise GuardError(f"{root} is outside the folders this server may use")

    async def origin(self, item_id: str) -> tuple[str, float, str | None] | None:
        """Where an item in the trash came from, when it went and its fingerprint in the trash (`store.Origin`), if
        this server (or its fleet) trashed it."""
        found: tuple[str, float, str | None] | None = self.store.origin(item_id)
        if found is None and self.fleet is not None:
            with contextlib.suppress(FleetUnavailable):  # unknown for now: answered as for an item trashed elsewhere
                found = await self.fleet.origin(item_id)
        return found

    def default_folder(self, folder_id: str | None) -> str:
        if folder_id:
            return folder_id
        return self.settings.allowed_folder_ids[0] if self.scoped else enums.MEDIA_ROOT_ID


def trashed_error(file_id: str) -> GuardError:
    return GuardError(
        f"file {file_id} is in the trash; restore it with restore_from_trash(file_ids=[{file_id!r}]), "
        "or find trashed files with search_files(root='TRASH_ROOT')"
    )


def size_text(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{count} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{count} bytes"


def statuses_text(items: Sequence[ItemResult]) -> str:
    return "; ".join(f"{i.kind} {visible(i.id)} {i.status.replace('_', ' ')}" for i in items)


def clean_name(name: str, what: str) -> str:
    cleaned = clean(name)
    if not cleaned or cleaned in (".", ".."):
        raise GuardError(f"{what} is empty once invisible and control characters are removed")
    return cleaned


def mime_of(name: str, given: str | None) -> str:
    if given:
        return given.strip().lower()
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


@dataclass(frozen=True)
class _Position:
    """Where a cursor resumes: the backend page to read again, and in it the row it points at (``anchor``, by id),
    after the last row the agent was given (``after``), or at ``index``: ids first, so rows that came or went
    earlier in the page since (an upload anywhere, a file trashed) neither skip nor repeat an item."""

    backend_cursor: str | None
    index: int
    anchor: str | None
    after: str | None
    batch: int | None
    """The rows asked of the backend for that page: it is asked for the same again, whatever the next call's limit."""

    def resume_in(self, raw: Sequence[_Identified]) -> int:
        ids = [row.id for row in raw]
        if self.anchor is not None and self.anchor in ids:
            return ids.index(self.anchor)
        if self.after is not None and self.after in ids:
            return ids.index(self.after) + 1
        return min(self.index, len(raw))
