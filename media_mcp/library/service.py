"""The library as one object: data directory, database, blobs, signer and clock, opened together."""

from __future__ import annotations

import logging
import math
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from media_mcp.library.blobs import BlobStore, RunningHash
from media_mcp.library.catalog import Catalog, FileRow, FolderRow
from media_mcp.library.datadir import DataDir
from media_mcp.library.db import Database
from media_mcp.library.records import Records
from media_mcp.library.tokens import Clock, Signer
from media_mcp.settings import LibrarySettings
from media_mcp.wix import models as m
from media_mcp.wix.ids import plain_file_id

log = logging.getLogger("media_mcp.library")

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.~-]{0,199}$")
_EXT_RE = re.compile(r"^[a-z0-9]{1,8}$")
_URL_SAFE_ID = re.compile(r"[A-Za-z0-9_.~-]+\Z")  # what `quote` leaves as it is

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


READY = m.OperationStatus.READY.value
EPOCH_DAY = date(1970, 1, 1)
PICTURE_TYPES = frozenset({m.MediaType.IMAGE.value, m.MediaType.VECTOR.value})


@lru_cache(maxsize=1024)  # the same rows are listed again and again; about 200 KiB when full
def wire_timestamp(epoch: float) -> str:
    """Seconds since the epoch as Wix writes times: UTC, milliseconds, ``Z`` (as `m.Timestamp` writes a datetime).

    Microseconds are rounded half to even and then cut to milliseconds, as ``datetime.fromtimestamp`` does.
    """
    seconds = math.floor(epoch)
    micro = round((epoch - seconds) * 1_000_000)
    if micro == 1_000_000:
        seconds, micro = seconds + 1, 0
    days, in_day = divmod(seconds, 86_400)
    hours, rest = divmod(in_day, 3_600)
    return f"{_day(days)}T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.{micro // 1000:03d}Z"


@lru_cache(maxsize=4096)
def _day(days_since_epoch: int) -> str:
    return (EPOCH_DAY + timedelta(days=days_since_epoch)).isoformat()


def _media_wire(row: FileRow, url: str) -> dict[str, Any] | None:
    """The ``media`` object of a ready file: one key, named for its media type (see `m.FileMedia`)."""
    name, size = row.display_name, str(row.size)
    match row.media_type:
        case "IMAGE" | "VECTOR":
            image = {"id": row.id, "url": url, "height": row.height, "width": row.width, "filename": name}
            return {row.media_type.lower(): {"image": image}}
        case "VIDEO":
            return {"video": {"id": row.id, "resolutions": [], "filename": name}}
        case "AUDIO":
            asset = {"id": row.id, "url": url, "filename": name}
            return {"audio": {"id": row.id, "assets": [asset], "sizeInBytes": size}}
        case "DOCUMENT":
            return {"document": {"id": row.id, "url": url, "filename": name}}
        case "ARCHIVE":
            return {"archive": {"id": row.id, "url": url, "sizeInBytes": size, "filename": name}}
        case "MODEL3D":
            return {"model3d": {"id": row.id, "url": url, "filename": name, "sizeInBytes": size}}
        case _:
            return None


@dataclass
class Library:
    settings: LibrarySettings
    data: DataDir
    db: Database
    catalog: Catalog
    records: Records
    blobs: BlobStore
    signer: Signer
    api_key: str
    site_id: str
    clock: Clock
    running: dict[str, RunningHash] = field(default_factory=dict)
    """Resumable uploads' hashes so far, by upload id (this process's memory only)."""

    @classmethod
    @contextmanager
    def open(cls, settings: LibrarySettings, clock: Clock = time.time) -> Iterator[Library]:
        """Open (creating on first use) the data directory; close everything on exit."""
        data = DataDir(Path(settings.data_dir).expanduser())
        data.prepare()
        lock: IO[bytes] = data.lock()
        try:
            db = Database(data.database)
            try:
                lib = cls._assemble(settings, data, db, clock)
                lib._recover()
                yield lib
            finally:
                db.close()
        finally:
            lock.close()

    @classmethod
    def _assemble(cls, settings: LibrarySettings, data: DataDir, db: Database, clock: Clock) -> Library:
        configured = settings.library_api_key.get_secret_value().strip() if settings.library_api_key else None
        with db.tx() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'site_id'").fetchone()
            site_id = row[0] if row else secrets.token_hex(16)
            if row is None:
                conn.execute("INSERT INTO meta (key, value) VALUES ('site_id', ?)", (site_id,))
        return cls(
            settings=settings,
            data=data,
            db=db,
            catalog=Catalog(db),
            records=Records(db),
            blobs=BlobStore(data.blobs, data.incoming),
            signer=Signer(data.signing_key(), clock),
            api_key=configured or data.api_key(),
            site_id=site_id,
            clock=clock,
        )

    def _recover(self) -> None:
        """Undo what a crash may have left: partial uploads, unowned blobs, dead claims."""
        now = self.clock()
        self.blobs.clear_incoming()
        for orphan in self.blobs.sweep(self.catalog.blob_keys()):
            log.info("removed unowned blob %s", orphan)
        self.records.forget_stale(now)
        if failed := self.catalog.fail_pending_imports(now):
            log.warning("%d import(s) were cut short by a stop and are marked FAILED", failed)
        expired = self.records.expired_resumable(now)
        self.records.drop_resumable(expired)
        if lost := [i for i in self.records_ids() if not self.part_path(i).is_file()]:
            log.warning("%d resumable upload(s) lost their bytes and were forgotten", len(lost))
            self.records.drop_resumable(lost)
        live = set(self.records_ids())
        for part in self.data.resumable.iterdir():
            if part.stem not in live:
                part.unlink(missing_ok=True)

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
    # Answers are built as wire JSON directly (camelCase, int64 as strings, no nulls): the shapes of
    # `m.FileDescriptor` and `m.Folder`, which tests hold these to, at a fraction of a model's cost.

    def file_wire(self, row: FileRow, base: str) -> dict[str, Any]:
        """The file descriptor JSON for a catalog row; links point under ``base``."""
        static = f"{base}/static/media/{row.id if _URL_SAFE_ID.match(row.id) else quote(row.id)}"
        ready = row.status == READY
        wire: dict[str, Any] = {
            "id": row.id,
            "displayName": row.display_name,
            "url": static,
            "parentFolderId": row.parent_id,
            "hash": row.hash if ready else "",
        }
        if ready:
            wire["sizeInBytes"] = str(row.size)
        wire["private"] = row.private
        wire["mediaType"] = row.media_type
        if ready and (media := _media_wire(row, "" if row.private else static)) is not None:
            wire["media"] = media
        wire["operationStatus"] = row.status
        if row.source_url is not None:
            wire["sourceUrl"] = row.source_url
        if ready and not row.private and row.media_type in PICTURE_TYPES:
            wire["thumbnailUrl"] = static
        else:
            wire["thumbnailUrl"] = f"{base}/static/icons/{row.media_type.lower()}.svg"
        wire["labels"] = list(row.labels)
        wire["createdDate"] = wire_timestamp(row.created)
        wire["updatedDate"] = wire_timestamp(row.updated)
        wire["siteId"] = self.site_id
        wire["state"] = row.state
        return wire

    def folder_wire(self, row: FolderRow) -> dict[str, Any]:
        return {
            "id": row.id,
            "displayName": row.display_name,
            "parentFolderId": row.parent_id,
            "createdDate": wire_timestamp(row.created),
            "updatedDate": wire_timestamp(row.updated),
            "state": row.state,
            "siteId": self.site_id,
        }

    def system_folder_wire(self, folder_id: str) -> dict[str, Any]:
        return {"id": folder_id, "displayName": SYSTEM_FOLDER_NAMES[folder_id], "state": "OK", "siteId": self.site_id}
