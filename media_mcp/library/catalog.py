"""Files and folders in SQLite: the Media Manager's tree, its trash and its search index.

Trash model: an item trashed directly moves under ``trash-root`` and remembers its old parent in
``trash_parent``; everything inside a trashed folder keeps its place, is marked ``DELETED`` and
remembers the folder in ``trashed_by``, so restoring the folder brings exactly those back.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from media_mcp.library.db import Database
from media_mcp.library.outcomes import drop_assets
from media_mcp.library.rows import FileRow, FolderRow
from media_mcp.library.search import FEW_MATCHES, IDS, Page, ids_param, page_sql, search_refusal, search_text
from media_mcp.wix.models import MEDIA_ROOT_ID, TRASH_ROOT_ID, VISITOR_UPLOADS_ID

MEDIA = "media"
VISITOR = "visitor"
OK = "OK"
DELETED = "DELETED"
_IMPORTING = "status = 'PENDING' AND blob IS NULL"
"""A file whose import is still fetching its bytes (a pending file with bytes is being processed)."""


class CatalogError(Exception):
    """A request the tree cannot honour; ``code`` and ``ident`` say why and for what."""

    def __init__(self, code: str, message: str, ident: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.ident = ident


class Catalog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def upgrade(self) -> None:
        """Bring a database made by an older version up to this one's tables (columns SQLite cannot add by itself)."""
        with self.db.tx() as conn:
            columns = {r["name"] for r in conn.execute("PRAGMA table_info(files)")}
            if "processed" not in columns:
                conn.execute("ALTER TABLE files ADD COLUMN processed TEXT")
            if "holder" not in {r["name"] for r in conn.execute("PRAGMA table_info(upload_claims)")}:
                conn.execute("ALTER TABLE upload_claims ADD COLUMN holder TEXT")

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
                (cur.lastrowid, search_text(row.display_name, row.mime_type, row.labels)),
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

    def add_import(self, row: FileRow, file_path: Sequence[str], owner: str) -> FileRow:
        """Insert a file whose bytes an import is fetching in the process that joined as ``owner``."""

        def register(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO imports (file_id, owner, started) VALUES (?, ?, ?)",
                (row.id, owner, row.created),
            )

        return self.add_file(row, file_path, also=register)

    def complete_import(self, file_id: str, **values: Any) -> bool:
        """Fill in an imported file's content fields once its bytes are stored; False if the import was no longer
        pending (failed meanwhile, as a sibling may decide, or deleted), and nothing changed."""
        allowed = {"status", "hash", "size", "blob", "media_type", "mime_type", "width", "height", "updated"}
        assert set(values) <= allowed
        with self.db.tx() as conn:
            sets = ", ".join(f"{k} = ?" for k in values)
            done = conn.execute(
                f"UPDATE files SET {sets} WHERE id = ? AND {_IMPORTING}", (*values.values(), file_id)
            ).rowcount
            conn.execute("DELETE FROM imports WHERE file_id = ?", (file_id,))
            if not done:
                return False
            row = conn.execute("SELECT seq, display_name, mime_type, labels FROM files WHERE id = ?", (file_id,))
            if found := row.fetchone():
                text = search_text(found["display_name"], found["mime_type"], json.loads(found["labels"]))
                conn.execute("UPDATE files_text SET body = ? WHERE rowid = ?", (text, found["seq"]))
            return True

    def fail_import(self, file_id: str, reason: str, now: float) -> bool:
        """Mark a pending import FAILED for ``reason``; False if it was not pending any more (nothing changed)."""
        with self.db.tx() as conn:
            done = conn.execute(
                f"UPDATE files SET status = 'FAILED', updated = ? WHERE id = ? AND {_IMPORTING}", (now, file_id)
            ).rowcount
            conn.execute("DELETE FROM imports WHERE file_id = ?", (file_id,))
            if done:
                conn.execute("INSERT OR REPLACE INTO failures (file_id, reason) VALUES (?, ?)", (file_id, reason))
            return bool(done)

    def pending_imports(self, file_ids: Sequence[str]) -> dict[str, tuple[str, float]]:
        """The imports still fetching among ``file_ids``: who runs each (its member ident; empty if an older version
        started it) and since when."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT f.id, coalesce(i.owner, ''), coalesce(i.started, f.created) FROM files f"
                f" LEFT JOIN imports i ON i.file_id = f.id WHERE f.id IN ({IDS}) AND {_IMPORTING}",
                (ids_param(file_ids),),
            )
            return {r[0]: (r[1], r[2]) for r in rows}

    # --- failures -----------------------------------------------------------------------------

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
                (search_text(current.display_name, current.mime_type, current.labels), file_id),
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
            if (refusal := search_refusal(exc, budget)) is None:
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
            return FileRow.all_from(conn.execute(*page_sql("files", page, found=found)))

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
            failed = conn.execute(
                f"UPDATE files SET status='FAILED', updated=? WHERE status='PENDING' AND blob IS NULL{since}",
                (now,) if started_before is None else (now, started_before),
            ).rowcount
            conn.execute(f"DELETE FROM imports WHERE file_id NOT IN (SELECT id FROM files WHERE {_IMPORTING})")
            return failed

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
            return [FolderRow.from_row(r) for r in conn.execute(*page_sql("folders", page))]
