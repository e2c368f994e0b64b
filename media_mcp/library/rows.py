"""A file's and a folder's rows in the catalog, as the library reads them."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field, fields
from functools import lru_cache
from operator import itemgetter
from typing import Any


@dataclass
class FileRow:
    id: str
    display_name: str
    parent_id: str
    root: str
    state: str
    private: bool
    media_type: str
    mime_type: str
    size: int
    hash: str
    blob: str | None
    status: str
    created: float
    updated: float
    width: int = 0
    height: int = 0
    source_url: str | None = None
    labels: list[str] = field(default_factory=list)
    trash_parent: str | None = None
    trashed_by: str | None = None
    processed: str | None = None
    """What processing found (JSON, see `assets.Processed`); None until it has run."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> FileRow:
        return cls(
            id=row["id"],
            display_name=row["display_name"],
            parent_id=row["parent_id"],
            root=row["root"],
            state=row["state"],
            private=bool(row["private"]),
            media_type=row["media_type"],
            mime_type=row["mime_type"],
            size=row["size"],
            hash=row["hash"],
            blob=row["blob"],
            status=row["status"],
            created=row["created"],
            updated=row["updated"],
            width=row["width"],
            height=row["height"],
            source_url=row["source_url"],
            labels=json.loads(row["labels"]),
            trash_parent=row["trash_parent"],
            trashed_by=row["trashed_by"],
            processed=row["processed"],
        )

    @classmethod
    def all_from(cls, cursor: sqlite3.Cursor) -> list[FileRow]:
        """Every row a ``SELECT *`` cursor yields, reading columns by position (a page's rows, quickly)."""
        pick = _picker(tuple(d[0] for d in cursor.description))
        out = []
        for row in cursor:
            values = list(pick(row))
            values[LABELS_AT] = json.loads(values[LABELS_AT]) if values[LABELS_AT] != "[]" else []
            values[PRIVATE_AT] = bool(values[PRIVATE_AT])
            out.append(cls(*values))
        return out


FILE_ROW_FIELDS = tuple(f.name for f in fields(FileRow))
LABELS_AT, PRIVATE_AT = FILE_ROW_FIELDS.index("labels"), FILE_ROW_FIELDS.index("private")


@lru_cache(maxsize=8)
def _picker(columns: tuple[str, ...]) -> itemgetter[Any]:
    """Takes `FileRow`'s fields, in order, out of a row with these columns."""
    return itemgetter(*(columns.index(name) for name in FILE_ROW_FIELDS))


@dataclass
class FolderRow:
    id: str
    display_name: str
    parent_id: str
    root: str
    state: str
    created: float
    updated: float
    trash_parent: str | None = None
    trashed_by: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> FolderRow:
        return cls(**{k: row[k] for k in row.keys() if k != "sort_name"})  # noqa: SIM118 - sqlite3.Row
