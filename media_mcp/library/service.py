"""The library as one object: data directory, database, blobs, signer and clock, opened together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio

from media_mcp.library import assets
from media_mcp.library.blobs import BlobStore, RunningHash
from media_mcp.library.catalog import Catalog
from media_mcp.library.datadir import OWNER_DIR, DataDir, DataDirError
from media_mcp.library.db import Database
from media_mcp.library.outcomes import Outcomes
from media_mcp.library.processor import ProcessingLimits, Processor, finished
from media_mcp.library.records import Records
from media_mcp.library.rows import FileRow, FolderRow
from media_mcp.library.tokens import Clock, Signer
from media_mcp.settings import LibrarySettings
from media_mcp.wix import models as m
from media_mcp.wix.ids import plain_file_id

log = logging.getLogger("media_mcp.library")

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.~-]{0,199}$")
_EXT_RE = re.compile(r"^[a-z0-9]{1,8}$")

STALE_IMPORT_MARGIN = 60.0
"""Seconds past its time limit after which a pending import is surely dead, whichever process ran it."""
IMPORTER_GONE = "the process running the import stopped before it finished; import the file again"

SYSTEM_FOLDER_NAMES = {
    m.MEDIA_ROOT_ID: "Site Files",
    m.TRASH_ROOT_ID: "Trash",
    m.VISITOR_UPLOADS_ID: "Visitor Uploads",
}


def parse_file_id(raw: str) -> str | None:
    """A file id from a bare id or a ``wix:image://v1/<id>/...`` media URL; None if it cannot exist."""
    raw = plain_file_id(raw)
    return raw if _ID_RE.match(raw) else None


def extension_of(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return ext if _EXT_RE.match(ext) else ""


def _timestamp(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _limits(settings: LibrarySettings) -> ProcessingLimits:
    """The processing limits the settings ask for (the defaults where they leave them)."""
    limits = ProcessingLimits(timeout_seconds=settings.library_processing_timeout_seconds)
    if settings.library_processing_workers:
        limits = replace(limits, workers=settings.library_processing_workers)
    return limits


@contextmanager
def _unusable(data: DataDir) -> Iterator[None]:
    """While opening: an error of the file system or of SQLite is the data directory's, said in one line."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        raise DataDirError(data.root, exc) from exc


@dataclass
class Library:
    settings: LibrarySettings
    data: DataDir
    db: Database
    catalog: Catalog
    records: Records
    outcomes: Outcomes
    blobs: BlobStore
    processor: Processor
    signer: Signer
    api_key: str
    site_id: str
    clock: Clock
    running: dict[str, RunningHash] = field(default_factory=dict)
    """Resumable uploads' hashes so far, by upload id (this process's memory only)."""
    member: str = ""
    """This process's ident among those sharing the data directory (`datadir.Membership`)."""
    jobs: set[asyncio.Task[None]] = field(default_factory=set)
    """Work a request started and the library finishes after answering (imports), on the loop that serves it."""

    transfers: dict[anyio.CancelScope, asyncio.AbstractEventLoop] = field(default_factory=dict)
    """Uploads receiving bytes, on the loops that serve them: `stop_transfers` ends them."""
    stopping: bool = False
    _transfers_lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def transfer(self) -> Iterator[anyio.CancelScope]:
        """A scope around an upload's bytes arriving, which `stop_transfers` cancels (see `cancelled_caught`)."""
        scope = anyio.CancelScope()
        loop = asyncio.get_running_loop()
        with self._transfers_lock:
            if self.stopping:
                scope.cancel()
            self.transfers[scope] = loop
        try:
            with scope:
                yield scope
        finally:
            with self._transfers_lock:
                self.transfers.pop(scope, None)

    def stop_transfers(self) -> None:
        """The library is stopping: end the uploads in flight now, from any thread (they answer 503 and free their
        links), rather than wait for bytes that may take minutes; new ones end as they start."""
        with self._transfers_lock:
            self.stopping = True
            running = list(self.transfers.items())
        for scope, loop in running:
            with contextlib.suppress(RuntimeError):  # that loop has closed: nothing runs there any more
                loop.call_soon_threadsafe(scope.cancel)

    async def stop_jobs(self, within: float) -> None:
        """Cancel the jobs (imports) running on this loop and wait, at most ``within`` seconds, for them to record
        that they were cut short, while the database is still open; those of other loops are cancelled too."""
        here = asyncio.get_running_loop()
        mine = []
        for task in list(self.jobs):
            if task.get_loop() is here:
                task.cancel()
                mine.append(task)
            else:
                with contextlib.suppress(RuntimeError):
                    task.get_loop().call_soon_threadsafe(task.cancel)
        if mine:
            await asyncio.wait(mine, timeout=within)

    def start_job(self, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``job`` on the serving event loop, beside the request that started it, not inside its answer.

        The job belongs to the library, not to the response: the caller gets its answer at once, whether the app
        is served by uvicorn or called in-process, and a caller that goes away does not end the job.
        """
        task = asyncio.get_running_loop().create_task(job())
        self.jobs.add(task)
        task.add_done_callback(self.jobs.discard)

    async def settle(self) -> None:
        """Wait until the jobs started so far (on the loop that runs them) and the processing queued have ended."""
        while True:
            if self.jobs:
                await asyncio.wait(list(self.jobs))
            elif queued := self.processor.jobs():
                for job in queued:
                    await finished(job)
            else:
                return

    @classmethod
    @contextmanager
    def open(
        cls, settings: LibrarySettings, clock: Clock = time.time, processing: ProcessingLimits | None = None
    ) -> Iterator[Library]:
        """Open (creating on first use) the data directory; close everything on exit."""
        data = DataDir(Path(settings.data_dir).expanduser())
        with _unusable(data):
            data.prepare()
            membership = data.join(settings.library_start_timeout_seconds)
        try:
            with _unusable(data):
                db = Database(data.database)
            try:
                with _unusable(data):
                    lib = cls._assemble(settings, data, db, clock, processing or _limits(settings))
                lib.member = lib.blobs.owner = membership.ident
                try:
                    with _unusable(data):
                        lib._recover(alone=membership.alone)
                        membership.share()
                    yield lib
                finally:
                    lib.processor.close()  # before the database: a worker's outcome is recorded or left PENDING
            finally:
                db.close()
        finally:
            membership.close()

    @classmethod
    def _assemble(
        cls, settings: LibrarySettings, data: DataDir, db: Database, clock: Clock, processing: ProcessingLimits
    ) -> Library:
        configured = settings.library_api_key.get_secret_value().strip() if settings.library_api_key else None
        with db.tx() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'site_id'").fetchone()
            site_id = row[0] if row else secrets.token_hex(16)
            if row is None:
                conn.execute("INSERT INTO meta (key, value) VALUES ('site_id', ?)", (site_id,))
        catalog, outcomes = Catalog(db), Outcomes(db)
        catalog.upgrade()
        blobs = BlobStore(data.blobs, data.incoming)
        return cls(
            settings=settings,
            data=data,
            db=db,
            catalog=catalog,
            records=Records(db),
            outcomes=outcomes,
            blobs=blobs,
            processor=Processor(catalog, outcomes, blobs, data.incoming, clock, processing),
            signer=Signer(data.signing_key(), clock),
            api_key=configured or data.api_key(),
            site_id=site_id,
            clock=clock,
        )

    def _recover(self, *, alone: bool) -> None:
        """Undo what a crash may have left: partial uploads, unlisted blobs (set aside, never deleted), dead claims.

        Other processes may have the data directory open (``alone`` false): then what looks left over (a file in
        ``incoming/``, a blob whose row is not committed yet, a busy upload link, a pending import) may be their
        work in flight, and only what has outlived its time limit goes; the rest waits for a process that starts
        alone.
        """
        now = self.clock()
        aside = self.data.quarantine / _timestamp(now).strftime("%Y%m%dT%H%M%SZ")
        if alone:
            self.blobs.clear_incoming()  # single-request uploads of processes that are gone: never stored files
            self._set_aside_unlisted(aside)
            self.data.clear_secret_leftovers()
        elif gone := self.blobs.clear_incoming_of(self.data.alive):
            log.info("removed %d partial upload(s) of processes that are gone", gone)
        self.records.forget_stale(now, busy=alone)
        started_before = None if alone else now - self.settings.library_import_timeout_seconds - STALE_IMPORT_MARGIN
        if failed := self.catalog.fail_pending_imports(now, started_before):
            log.warning("%d import(s) were cut short by a stop and are marked FAILED", failed)
        # processing cut short by a stop starts again; with others sharing the directory, only what no process can
        # still be working on (see STALE_IMPORT_MARGIN)
        stale = None if alone else now - self.processor.limits.timeout_seconds - STALE_IMPORT_MARGIN
        if resumed := self.processor.resume(stale):
            log.info("processing of %d file(s) resumed", resumed)
        expired = self.records.expired_resumable(now)
        self.records.drop_resumable(expired)
        if not alone:
            return
        for upload_id in expired:  # their links are dead: nothing can resume them
            self.part_path(upload_id).unlink(missing_ok=True)
        if lost := [i for i in self.records_ids() if not self.part_path(i).is_file()]:
            log.warning("%d resumable upload(s) lost their bytes and were forgotten", len(lost))
            self.records.drop_resumable(lost)
        live = set(self.records_ids())
        link_life = self.settings.library_resumable_link_minutes * 60
        kept = 0
        for part in self.data.resumable.iterdir():
            if part.stem in live:
                continue
            try:
                if part.is_file() and part.stat().st_mtime < now - link_life:
                    part.unlink()  # a partial upload no link can resume any more
                    continue
                target = aside / self.data.resumable.name / part.name
                target.parent.mkdir(mode=OWNER_DIR, parents=True, exist_ok=True)
                if not target.exists():
                    part.rename(target)
                    kept += 1
            except OSError as exc:
                log.warning("left %s in place: %s", part, exc)
        if kept:
            log.warning(
                "%d resumable upload(s) the catalogue does not list, written to within their link's life, were "
                "moved (not deleted) to %s",
                kept,
                aside / self.data.resumable.name,
            )

    def _set_aside_unlisted(self, aside: Path) -> None:
        """Move blobs no row lists into the quarantine (``aside``), saying so loudly; never delete them.

        Either a crash came between a blob's rename and its row's commit, or the catalogue lost track of files
        (deleted, emptied, restored from an older copy): the bytes may be someone's only copy.
        """
        result = self.blobs.set_aside(self.catalog.blob_keys(), aside)
        if result.moved:
            with self.db.read() as conn:
                listed = conn.execute("SELECT count(*) FROM files").fetchone()[0]
            hint = (
                f"; the catalogue lists no files at all: if {self.data.database.name} was deleted, emptied or "
                f"replaced, stop every media-mcp process using {self.data.root}, put the catalogue back, and move "
                f"these back under {self.data.blobs} (keeping their two-letter folders)"
                if listed == 0
                else ""
            )
            log.warning(
                "%d stored file(s) are not listed in the catalogue (%s) and were moved, not deleted, to %s%s",
                len(result.moved),
                self.data.database,
                result.into,
                hint,
            )
        if result.kept:
            path, reason = result.kept[0]
            log.warning(
                "%d stored file(s) not listed in the catalogue could not be set aside and stay where they are "
                "(first: %s: %s)",
                len(result.kept),
                path,
                reason,
            )

    def fail_stale_imports(self, file_ids: Sequence[str]) -> set[str]:
        """Mark FAILED the imports among ``file_ids`` that can no longer finish; return their ids.

        One can no longer finish when the process running it is gone (its member lock is free: killed, crashed), or
        when its time limit and `STALE_IMPORT_MARGIN` have passed, whichever process runs it. Others are left alone.
        """
        pending = self.catalog.pending_imports(file_ids)
        if not pending:
            return set()
        now = self.clock()
        limit = self.settings.library_import_timeout_seconds
        failed = set()
        for file_id, (owner, started) in pending.items():
            if owner and owner != self.member and not self.data.alive(owner):
                reason = IMPORTER_GONE
            elif started < now - limit - STALE_IMPORT_MARGIN:
                reason = f"the import did not finish within its time limit ({limit:g} s); import the file again"
            else:
                continue
            if self.catalog.fail_import(file_id, reason, now):
                log.warning("the import of %s can no longer finish and is marked FAILED: %s", file_id, reason)
                failed.add(file_id)
        return failed

    def records_ids(self) -> list[str]:
        with self.db.read() as conn:
            return [r[0] for r in conn.execute("SELECT id FROM resumable")]

    def part_path(self, upload_id: str) -> Path:
        # upload ids are minted here (hex) and checked before use
        return self.data.resumable / f"{upload_id}.part"

    def new_file_id(self, media_type: m.MediaType, name: str) -> str:
        base = f"{self.site_id[:6]}_{secrets.token_hex(16)}"
        ext = extension_of(name)
        if media_type in (m.MediaType.IMAGE, m.MediaType.VECTOR):
            return f"{base}~mv2.{ext or 'bin'}"
        if media_type == m.MediaType.VIDEO or not ext:
            return base
        return f"{base}.{ext}"

    # --- rendering ------------------------------------------------------------------------

    def render_file(self, row: FileRow, base: str) -> m.FileDescriptor:
        """The file descriptor of a catalog row; links point under ``base``.

        A private file's media URLs are empty and its thumbnail is its type's icon: its bytes leave only through
        download links.
        """
        quoted = quote(row.id)
        static = f"{base}/static/media/{quoted}"
        ready = row.status == m.OperationStatus.READY
        stored = row.blob is not None  # while processing, or failed in it, the bytes are there all the same
        found = assets.Processed.parse(row.processed) if ready else None

        def asset_url(key: str) -> str:
            return "" if row.private else f"{base}/static/assets/{quoted}/{key}"

        thumbnail = f"{base}/static/icons/{row.media_type.lower()}.svg"
        if ready and not row.private:
            if found is not None and found.asset(assets.THUMBNAIL):
                thumbnail = asset_url(assets.THUMBNAIL)
            elif row.media_type in (m.MediaType.IMAGE, m.MediaType.VECTOR):
                thumbnail = static
        return m.FileDescriptor.model_validate(  # one validation of the whole descriptor, media included
            {
                "id": row.id,
                "displayName": row.display_name,
                "url": static,
                "parentFolderId": row.parent_id,
                "hash": row.hash if stored else "",
                "sizeInBytes": row.size if stored else None,
                "private": row.private,
                "mediaType": row.media_type,
                "media": assets.media(row, "" if row.private else static, asset_url, found) if ready else None,
                "operationStatus": row.status,
                "sourceUrl": row.source_url,
                "thumbnailUrl": thumbnail,
                "labels": row.labels,
                "createdDate": _timestamp(row.created),
                "updatedDate": _timestamp(row.updated),
                "siteId": self.site_id,
                "state": row.state,
            }
        )

    def render_folder(self, row: FolderRow) -> m.Folder:
        return m.Folder(
            id=row.id,
            display_name=row.display_name,
            parent_folder_id=row.parent_id,
            created_date=_timestamp(row.created),
            updated_date=_timestamp(row.updated),
            state=row.state,
            site_id=self.site_id,
        )

    def render_system_folder(self, folder_id: str) -> m.Folder:
        return m.Folder(id=folder_id, display_name=SYSTEM_FOLDER_NAMES[folder_id], site_id=self.site_id)
