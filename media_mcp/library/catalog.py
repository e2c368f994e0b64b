"""Files and folders in SQLite: the Media Manager's tree, its trash and its search index.

Trash model: an item trashed directly moves under ``trash-root`` and remembers its old parent in
``trash_parent``; everything inside a trashed folder keeps its place, is marked ``DELETED`` and
remembers the folder in ``trashed_by``, so restoring the folder brings exactly those back.
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from functools import lru_cache
from operator import itemgetter
from typing import Any

from media_mcp.library.db import Database
from media_mcp.library.outcomes import drop_assets
from media_mcp.wix.models import MEDIA_ROOT_ID, TRASH_ROOT_ID, VISITOR_UPLOADS_ID

MEDIA = "media"
VISITOR = "visitor"
OK = "OK"
DELETED = "DELETED"


class CatalogError(Exception):
    """A request the tree cannot honour; ``code`` and ``ident`` say why and for what."""

    def __init__(self, code: str, message: str, ident: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.ident = ident


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


MAX_SEARCH_CHARS = 200
"""The longest search text: as long as Wix's search field takes (a cursor carries the search it was issued for)."""
MAX_SEARCH_WORDS = 16
"""The most words a search may require, once repeats and words inside longer ones are dropped (they add nothing)."""
SEARCH_LIMITS = (
    f"a search may have at most {MAX_SEARCH_CHARS} characters and {MAX_SEARCH_WORDS} different words "
    "(a repeated word, or one inside a longer word, counts once)"
)


class SearchRefused(Exception):
    """A search the library will not run (``code``, and a message that says why and what to do instead)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def search_words(text: str, fold: Callable[[str], str] = str.lower) -> list[str]:
    """The words a search requires, folded with ``fold``, longest first; control characters (NUL breaks FTS5
    queries) count as spaces, and a word repeated or inside a longer one is dropped (the longer one requires it).

    Raises `SearchRefused` for a search over `SEARCH_LIMITS`, before any work.
    """
    if len(text) > MAX_SEARCH_CHARS:
        raise SearchRefused("SEARCH_TOO_LONG", f"the search has {len(text)} characters; {SEARCH_LIMITS}")
    words = fold("".join(" " if unicodedata.category(c) == "Cc" else c for c in text)).split()
    kept: list[str] = []
    for word in sorted(set(words), key=lambda w: (-len(w), w)):
        if not any(word in longer for longer in kept):
            kept.append(word)
    if len(kept) > MAX_SEARCH_WORDS:
        raise SearchRefused(
            "SEARCH_TOO_COMPLEX",
            f"the search has {len(kept)} different words; {SEARCH_LIMITS}. Leave some out, or narrow the search"
            " with filters (mediaTypes, private, rootFolder)",
        )
    return kept


SHORT_WORD_SQL = "body LIKE ? ESCAPE '\\'"


def _contains(word: str) -> str:
    """The LIKE pattern for text that contains ``word`` (its ``%``, ``_`` and ``\\`` are plain characters)."""
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class TextSearch:
    """The words a file search requires, in name, MIME type or labels (`_search_text`), case-insensitively.

    Words of three characters or more are found through the trigram index (``match``, an FTS5 query). Shorter
    ones cannot be: LIKE looks for them in the indexed text row by row (``short``), so they never match JSON
    punctuation or cross fields.
    """

    match: str | None
    short: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> TextSearch | None:
        """The search for ``text``; None if it has no words. Raises `SearchRefused` (see `search_words`)."""
        words = search_words(text)
        if not words:
            return None
        match = " ".join('"' + w.replace('"', '""') + '"' for w in words if len(w) >= 3)
        return cls(match or None, tuple(w for w in words if len(w) < 3))

    def matches(self) -> tuple[str, list[Any]]:
        """A SELECT of the rowids of every file that matches."""
        clauses = (["files_text MATCH ?"] if self.match else []) + [SHORT_WORD_SQL] * len(self.short)
        params = ([self.match] if self.match else []) + [_contains(w) for w in self.short]
        return f"SELECT rowid FROM files_text WHERE {' AND '.join(clauses)}", params

    def clause(self) -> tuple[str, list[Any]]:
        """The condition on ``files`` rows for a search that matches many.

        With indexed words the matches are found once; with short words only, each row is read as the sorted
        walk reaches it, so a common word stops as soon as the page is full.
        """
        if self.match is not None:
            sql, params = self.matches()
            return f"seq IN ({sql})", params
        checks = " AND ".join([SHORT_WORD_SQL] * len(self.short))
        return f"(SELECT {checks} FROM files_text WHERE rowid = seq)", [_contains(w) for w in self.short]


@dataclass(frozen=True)
class Page:
    """What a listing asks for: filters, one sort, and where the previous page stopped."""

    where: str
    params: tuple[Any, ...]
    sort_column: str
    descending: bool
    limit: int
    after: tuple[Any, Any] | None = None
    text: TextSearch | None = None  # the words a file search requires, besides ``where``


IDS = "SELECT value FROM json_each(?)"
"""A list of ids as one parameter (`ids_param`): one statement text whatever the list's length, so SQLite's statement
cache keeps one statement, not one per length (their churn fragmented the heap under load), and no list is too long
for SQLite's limit on parameters."""
LISTED_SQL = f"seq IN ({IDS})"


def ids_param(ids: Sequence[str] | Sequence[int]) -> str:
    """The parameter of `IDS`."""
    return json.dumps(list(ids))


FEW_MATCHES = 2000
"""Up to this many text matches, a search reads its matches first and sorts them; above, it walks the sorted index."""


def _search_text(display_name: str, mime_type: str, labels: Iterable[str]) -> str:
    """What search looks in: name, MIME type and labels, one per line, lower-cased (the index and LIKE agree)."""
    return "\n".join([display_name, mime_type, *labels]).lower()


def _refusal(exc: sqlite3.OperationalError, budget: float | None) -> SearchRefused | None:
    """The refusal a listing that SQLite stopped deserves: over its time budget, or too large to run at all."""
    reason = str(exc)
    if reason == "interrupted":
        spent = f"its {budget:g} s budget" if budget is not None else "its time budget"
        return SearchRefused(
            "SEARCH_TOO_BROAD",
            f"the search was stopped after {spent}: it is too broad for this library. Add words of three or more"
            " characters, or narrow it with filters (mediaTypes, private, rootFolder)",
        )
    if "too large" in reason or "too complex" in reason or "too many" in reason:
        return SearchRefused("SEARCH_TOO_COMPLEX", f"the search is too complex to run ({reason}); {SEARCH_LIMITS}")
    return None


class Catalog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def upgrade(self) -> None:
        """Bring a database made by an older version up to this one's tables (columns SQLite cannot add by itself)."""
        with self.db.tx() as conn:
            columns = {r["name"] for r in conn.execute("PRAGMA table_info(files)")}
            if "processed" not in columns:
                conn.execute("ALTER TABLE files ADD COLUMN processed TEXT")

    # --- helpers that run inside a transaction --------------------------------------------

    @staticmethod
    def _folder(conn: sqlite3.Connection, folder_id: str) -> FolderRow | None:
        row = conn.execute("SELECT * FROM folders WHERE id = ?", (folder_id,)).fetchone()
        return FolderRow.from_row(row) if row else None

    def _live_root(self, conn: sqlite3.Connection, folder_id: str) -> str | None:
        """The root ('media'/'visitor') of a folder that can hold things now, else None."""
        if folder_id == MEDIA_ROOT_ID:
            return MEDIA
        if folder_id == VISITOR_UPLOADS_ID:
            return VISITOR
        folder = self._folder(conn, folder_id)
        return folder.root if folder and folder.state == OK else None

    def _require_live_parent(self, conn: sqlite3.Connection, folder_id: str) -> str:
        root = self._live_root(conn, folder_id)
        if root is None:
            code = "FOLDER_IN_TRASH" if folder_id == TRASH_ROOT_ID or self._folder(conn, folder_id) else "NOT_FOUND"
            raise CatalogError(code, f"folder {folder_id!r} cannot hold items", folder_id)
        return root

    @staticmethod
    def _subtree(conn: sqlite3.Connection, folder_id: str) -> list[str]:
        """Ids of every folder below ``folder_id`` (not including it)."""
        rows = conn.execute(
            "WITH RECURSIVE sub(id) AS (SELECT id FROM folders WHERE parent_id = ? "
            "UNION SELECT f.id FROM folders f JOIN sub ON f.parent_id = sub.id) SELECT id FROM sub",
            (folder_id,),
        ).fetchall()
        return [r[0] for r in rows]

    # --- files ------------------------------------------------------------------------------

    def add_file(
        self, row: FileRow, file_path: Sequence[str] = (), also: Callable[[sqlite3.Connection], None] | None = None
    ) -> FileRow:
        """Insert a new file (creating the ``file_path`` folders); fails if the parent is not live.

        ``also`` runs in the same transaction (e.g. to spend the upload token that brought the file).
        """
        with self.db.tx() as conn:
            if also is not None:
                also(conn)
            parent = row.parent_id
            for name in file_path:
                parent = self._ensure_child(conn, parent, name, row.created)
            row.parent_id = parent
            row.root = self._require_live_parent(conn, parent)
            cur = conn.execute(
                "INSERT INTO files (id, display_name, sort_name, parent_id, root, state, private, media_type,"
                " mime_type, size, hash, blob, width, height, status, source_url, labels, created, updated)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    row.id, row.display_name, row.display_name.casefold(), row.parent_id, row.root, row.state,
                    int(row.private), row.media_type, row.mime_type, row.size, row.hash, row.blob, row.width,
                    row.height, row.status, row.source_url, json.dumps(row.labels), row.created, row.updated,
                ),
            )  # fmt: skip
            conn.execute(
                "INSERT INTO files_text (rowid, body) VALUES (?, ?)",
                (cur.lastrowid, _search_text(row.display_name, row.mime_type, row.labels)),
            )
        return row

    def _ensure_child(self, conn: sqlite3.Connection, parent: str, name: str, now: float) -> str:
        root = self._require_live_parent(conn, parent)
        found = conn.execute(
            "SELECT id FROM folders WHERE parent_id = ? AND display_name = ? AND state = 'OK' ORDER BY created LIMIT 1",
            (parent, name),
        ).fetchone()
        if found:
            return str(found[0])
        import secrets

        folder_id = secrets.token_hex(16)
        conn.execute(
            "INSERT INTO folders (id, display_name, sort_name, parent_id, root, state, created, updated)"
            " VALUES (?,?,?,?,?,'OK',?,?)",
            (folder_id, name, name.casefold(), parent, root, now, now),
        )
        return folder_id

    def complete_import(self, file_id: str, **values: Any) -> None:
        """Fill in an imported file's content fields once its bytes are stored."""
        allowed = {"status", "hash", "size", "blob", "media_type", "mime_type", "width", "height", "updated"}
        assert set(values) <= allowed
        with self.db.tx() as conn:
            sets = ", ".join(f"{k} = ?" for k in values)
            conn.execute(f"UPDATE files SET {sets} WHERE id = ?", (*values.values(), file_id))
            row = conn.execute("SELECT seq, display_name, mime_type, labels FROM files WHERE id = ?", (file_id,))
            if found := row.fetchone():
                text = _search_text(found["display_name"], found["mime_type"], json.loads(found["labels"]))
                conn.execute("UPDATE files_text SET body = ? WHERE rowid = ?", (text, found["seq"]))

    # --- failures -----------------------------------------------------------------------------

    def record_failure(self, file_id: str, reason: str) -> None:
        """Why a file's import or processing failed, for its descriptor."""
        with self.db.tx() as conn:
            conn.execute("INSERT OR REPLACE INTO failures (file_id, reason) VALUES (?, ?)", (file_id, reason))

    def failures(self, file_ids: Sequence[str]) -> dict[str, str]:
        """The recorded reasons of the failed files among ``file_ids``."""
        if not file_ids:
            return {}
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT file_id, reason FROM failures WHERE file_id IN ({IDS})", (ids_param(file_ids),)
            )
            return {r[0]: r[1] for r in rows}

    def get_file(self, file_id: str) -> FileRow | None:
        with self.db.read() as conn:
            rows = FileRow.all_from(conn.execute("SELECT * FROM files WHERE id = ?", (file_id,)))
        return rows[0] if rows else None

    def get_files(self, file_ids: Sequence[str]) -> dict[str, FileRow]:
        with self.db.read() as conn:
            rows = conn.execute(f"SELECT * FROM files WHERE id IN ({IDS})", (ids_param(file_ids),))
            return {r.id: r for r in FileRow.all_from(rows)}

    def update_file(
        self,
        file_id: str,
        now: float,
        *,
        display_name: str | None = None,
        parent_id: str | None = None,
        labels: list[str] | None = None,
    ) -> FileRow:
        with self.db.tx() as conn:
            row = conn.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
            if row is None:
                raise CatalogError("NOT_FOUND", f"file {file_id!r} not found", file_id)
            current = FileRow.from_row(row)
            if parent_id is not None and parent_id != current.parent_id:
                if current.state != OK:
                    raise CatalogError("FILE_IN_TRASH", f"file {file_id!r} is in the trash", file_id)
                current.root = self._require_live_parent(conn, parent_id)
                current.parent_id = parent_id
            if display_name is not None:
                current.display_name = display_name
            if labels is not None:
                current.labels = labels
            current.updated = now
            conn.execute(
                "UPDATE files SET display_name=?, sort_name=?, parent_id=?, root=?, labels=?, updated=? WHERE id=?",
                (
                    current.display_name, current.display_name.casefold(), current.parent_id, current.root,
                    json.dumps(current.labels), now, file_id,
                ),
            )  # fmt: skip
            conn.execute(
                "UPDATE files_text SET body = ? WHERE rowid = (SELECT seq FROM files WHERE id = ?)",
                (_search_text(current.display_name, current.mime_type, current.labels), file_id),
            )
        return current

    def trash_files(self, file_ids: Sequence[str], now: float) -> None:
        """Move files to the trash; files already there stay as they are, unknown ids are skipped."""
        with self.db.tx() as conn:
            conn.execute(
                f"UPDATE files SET trash_parent = parent_id, parent_id = ?, state = 'DELETED', updated = ?"
                f" WHERE state = 'OK' AND id IN ({IDS})",
                (TRASH_ROOT_ID, now, ids_param(file_ids)),
            )

    def restore_files(self, file_ids: Sequence[str], now: float) -> None:
        """Bring trashed files back where they were (or to the top level if that is gone); skip unknown ids."""
        with self.db.tx() as conn:
            for file_id in file_ids:
                found = conn.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
                if found is None:
                    continue
                row = FileRow.from_row(found)
                if row.state == OK:
                    continue
                target = row.trash_parent if row.parent_id == TRASH_ROOT_ID else row.parent_id
                root = self._live_root(conn, target or MEDIA_ROOT_ID)
                if target is None or root is None:
                    target, root = MEDIA_ROOT_ID, MEDIA
                conn.execute(
                    "UPDATE files SET parent_id=?, root=?, state='OK', trash_parent=NULL, trashed_by=NULL, updated=?"
                    " WHERE id=?",
                    (target, root, now, file_id),
                )

    def delete_files(self, file_ids: Sequence[str]) -> list[str]:
        """Remove files for good (unknown ids are skipped); returns the blob keys to unlink once this has committed."""
        with self.db.tx() as conn:
            return self._drop_files(conn, f"id IN ({IDS})", (ids_param(file_ids),))

    @staticmethod
    def _drop_files(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> list[str]:
        rows = conn.execute(f"SELECT seq, id, blob FROM files WHERE {where}", params).fetchall()
        blobs = [r["blob"] for r in rows if r["blob"]]
        for row in rows:
            conn.execute("DELETE FROM files_text WHERE rowid = ?", (row["seq"],))
            conn.execute("DELETE FROM files WHERE seq = ?", (row["seq"],))
            blobs += drop_assets(conn, row["id"])
        return blobs

    @contextmanager
    def _listing(self, budget: float | None) -> Iterator[sqlite3.Connection]:
        """A read for a listing that may run at most ``budget`` seconds; raises `SearchRefused` past it."""
        try:
            with self.db.read_within(budget) as conn:
                yield conn
        except sqlite3.OperationalError as exc:
            if (refusal := _refusal(exc, budget)) is None:
                raise
            raise refusal from exc

    def list_files(self, page: Page, budget: float | None = None) -> list[FileRow]:
        """A page of files; ``budget``: seconds it may take (see `Database.read`), else `SearchRefused`."""
        with self._listing(budget) as conn:
            found = None
            if page.text is not None:
                sql, params = page.text.matches()
                found = [r[0] for r in conn.execute(f"{sql} LIMIT ?", (*params, FEW_MATCHES + 1))]
                if len(found) > FEW_MATCHES:
                    found = None
            return FileRow.all_from(conn.execute(*_page_sql("files", page, found=found)))

    def folder_files(self, folder_id: str, cap: int) -> list[FileRow]:
        """Every public file under a folder, at any depth, in a stable order, at most ``cap + 1`` (for zips).

        Private files are left out: a zip link is permanent and needs no key.
        """
        with self.db.read() as conn:
            ids = [folder_id, *self._subtree(conn, folder_id)]
            rows = conn.execute(
                f"SELECT * FROM files WHERE parent_id IN ({IDS}) AND private = 0"
                " ORDER BY parent_id, sort_name, id LIMIT ?",
                (ids_param(ids), cap + 1),
            ).fetchall()
        return [FileRow.from_row(r) for r in rows]

    def blob_keys(self) -> set[str]:
        """Every blob a row owns: files' bytes and their derived assets."""
        with self.db.read() as conn:
            rows = conn.execute("SELECT blob FROM files WHERE blob IS NOT NULL UNION ALL SELECT blob FROM assets")
            return {r[0] for r in rows}

    def fail_pending_imports(self, now: float, started_before: float | None = None) -> int:
        """Imports cut short by a stop can never finish: mark them failed.

        ``started_before``: only those asked for before then (the others may still be running in another process).
        """
        since = "" if started_before is None else " AND created < ?"
        with self.db.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO failures (file_id, reason) SELECT id, ? FROM files"
                f" WHERE status='PENDING' AND blob IS NULL{since}",
                (
                    "the library stopped before the import finished",
                    *(() if started_before is None else (started_before,)),
                ),
            )
            return conn.execute(
                f"UPDATE files SET status='FAILED', updated=? WHERE status='PENDING' AND blob IS NULL{since}",
                (now,) if started_before is None else (now, started_before),
            ).rowcount

    # --- folders ----------------------------------------------------------------------------

    def create_folder(self, folder_id: str, name: str, parent_id: str, now: float) -> FolderRow:
        with self.db.tx() as conn:
            root = self._require_live_parent(conn, parent_id)
            conn.execute(
                "INSERT INTO folders (id, display_name, sort_name, parent_id, root, state, created, updated)"
                " VALUES (?,?,?,?,?,'OK',?,?)",
                (folder_id, name, name.casefold(), parent_id, root, now, now),
            )
        return FolderRow(folder_id, name, parent_id, root, OK, now, now)

    def get_folder(self, folder_id: str) -> FolderRow | None:
        with self.db.read() as conn:
            return self._folder(conn, folder_id)

    def update_folder(
        self, folder_id: str, now: float, *, display_name: str | None = None, parent_id: str | None = None
    ) -> FolderRow:
        with self.db.tx() as conn:
            folder = self._folder(conn, folder_id)
            if folder is None:
                raise CatalogError("NOT_FOUND", f"folder {folder_id!r} not found", folder_id)
            if parent_id is not None and parent_id != folder.parent_id:
                if folder.state != OK:
                    raise CatalogError("FOLDER_IN_TRASH", f"folder {folder_id!r} is in the trash", folder_id)
                subtree = self._subtree(conn, folder_id)
                if parent_id == folder_id or parent_id in subtree:
                    raise CatalogError("FOLDER_CYCLE", "a folder cannot move into itself or its own subfolder")
                root = self._require_live_parent(conn, parent_id)
                if root != folder.root:
                    ids = [folder_id, *subtree]
                    conn.execute(f"UPDATE folders SET root = ? WHERE id IN ({IDS})", (root, ids_param(ids)))
                    conn.execute(f"UPDATE files SET root = ? WHERE parent_id IN ({IDS})", (root, ids_param(ids)))
                folder.parent_id, folder.root = parent_id, root
            if display_name is not None:
                folder.display_name = display_name
            folder.updated = now
            conn.execute(
                "UPDATE folders SET display_name=?, sort_name=?, parent_id=?, updated=? WHERE id=?",
                (folder.display_name, folder.display_name.casefold(), folder.parent_id, now, folder_id),
            )
        return folder

    def trash_folders(self, folder_ids: Sequence[str], now: float) -> None:
        """Move folders to the trash; what they hold follows them. Unknown ids are skipped."""
        with self.db.tx() as conn:
            for folder_id in folder_ids:
                folder = self._folder(conn, folder_id)
                if folder is None or folder.state != OK:
                    continue
                inner = self._subtree(conn, folder_id)
                if inner:
                    conn.execute(
                        f"UPDATE folders SET state='DELETED', trashed_by=?, updated=?"
                        f" WHERE state='OK' AND id IN ({IDS})",
                        (folder_id, now, ids_param(inner)),
                    )
                holders = [folder_id, *inner]
                conn.execute(
                    f"UPDATE files SET state='DELETED', trashed_by=?, updated=?"
                    f" WHERE state='OK' AND parent_id IN ({IDS})",
                    (folder_id, now, ids_param(holders)),
                )
                conn.execute(
                    "UPDATE folders SET trash_parent=parent_id, parent_id=?, state='DELETED', trashed_by=NULL,"
                    " updated=? WHERE id=?",
                    (TRASH_ROOT_ID, now, folder_id),
                )

    def restore_folders(self, folder_ids: Sequence[str], now: float) -> None:
        """Bring trashed folders and what they took along back to where they were. Unknown ids are skipped."""
        with self.db.tx() as conn:
            for folder_id in folder_ids:
                folder = self._folder(conn, folder_id)
                if folder is None or folder.state == OK:
                    continue
                target = folder.trash_parent if folder.parent_id == TRASH_ROOT_ID else folder.parent_id
                root = self._live_root(conn, target or MEDIA_ROOT_ID)
                if target is None or root is None:
                    target, root = MEDIA_ROOT_ID, MEDIA
                takers = [folder_id] + ([folder.trashed_by] if folder.trashed_by else [])
                inner = self._subtree(conn, folder_id)
                conn.execute(
                    "UPDATE folders SET parent_id=?, root=?, state='OK', trash_parent=NULL, trashed_by=NULL,"
                    " updated=? WHERE id=?",
                    (target, root, now, folder_id),
                )
                if inner:
                    conn.execute(
                        f"UPDATE folders SET state='OK', trashed_by=NULL, root=?, updated=?"
                        f" WHERE id IN ({IDS}) AND trashed_by IN ({IDS})",
                        (root, now, ids_param(inner), ids_param(takers)),
                    )
                holders = [folder_id, *inner]
                conn.execute(
                    f"UPDATE files SET state='OK', trashed_by=NULL, root=?, updated=?"
                    f" WHERE parent_id IN ({IDS}) AND trashed_by IN ({IDS})",
                    (root, now, ids_param(holders), ids_param(takers)),
                )

    def delete_folders(self, folder_ids: Sequence[str]) -> list[str]:
        """Remove folders and everything in them for good (unknown ids are skipped); returns blob keys to unlink."""
        blobs: list[str] = []
        with self.db.tx() as conn:
            for folder_id in folder_ids:
                if self._folder(conn, folder_id) is None:
                    continue
                ids = [folder_id, *self._subtree(conn, folder_id)]
                blobs += self._drop_files(conn, f"parent_id IN ({IDS})", (ids_param(ids),))
                conn.execute(f"DELETE FROM folders WHERE id IN ({IDS})", (ids_param(ids),))
        return blobs

    def list_folders(self, page: Page, budget: float | None = None) -> list[FolderRow]:
        """A page of folders; ``budget`` as for `list_files`."""
        with self._listing(budget) as conn:
            return [FolderRow.from_row(r) for r in conn.execute(*_page_sql("folders", page))]


def _page_sql(table: str, page: Page, *, found: list[int] | None = None) -> tuple[str, tuple[Any, ...]]:
    """Keyset paging: rows after ``page.after`` in (sort column, id) order.

    ``found``: the few rows that match the text (see `Catalog.list_files`): fetch them by rowid and sort them,
    rather than walking a sorted index through every row of the scope (``NOT INDEXED`` still allows the rowid
    lookups).
    """
    where, params = page.where, page.params
    if found is not None:
        where, params = f"({where}) AND {LISTED_SQL}", (*params, ids_param(found))
    elif page.text is not None:
        clause, extra = page.text.clause()
        where, params = f"({where}) AND {clause}", (*params, *extra)
    op = "<" if page.descending else ">"
    if page.after is not None:
        col = page.sort_column
        where = f"({where}) AND ({col} {op} ? OR ({col} = ? AND id {op} ?))"
        params = (*params, page.after[0], page.after[0], page.after[1])
    direction = "DESC" if page.descending else "ASC"
    source = f"{table} NOT INDEXED" if found is not None else table
    sql = f"SELECT * FROM {source} WHERE {where} ORDER BY {page.sort_column} {direction}, id {direction} LIMIT ?"
    return sql, (*params, page.limit + 1)
