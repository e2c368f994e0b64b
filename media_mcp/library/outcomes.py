"""What processing leaves in the database: a file's outcome (READY with what was found, or FAILED and why) and the
assets it made, each a blob.

A file's assets are replaced as a whole, in the transaction that records its outcome: processing a file again never
leaves two sets, and the blobs replaced are handed back to be unlinked once that has committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from media_mcp.library.db import Database


@dataclass(frozen=True)
class AssetRow:
    """A derived asset of a file, stored as a blob."""

    key: str
    blob: str
    mime: str
    size: int
    width: int = 0
    height: int = 0


def drop_assets(conn: sqlite3.Connection, file_id: str) -> list[str]:
    """Forget a file's assets (inside a transaction); their blobs, to unlink once it has committed."""
    blobs = [r[0] for r in conn.execute("SELECT blob FROM assets WHERE file_id = ?", (file_id,))]
    conn.execute("DELETE FROM assets WHERE file_id = ?", (file_id,))
    return blobs


class Outcomes:
    def __init__(self, db: Database) -> None:
        self.db = db

    def pending(self, changed_before: float | None = None) -> list[str]:
        """Files whose bytes are stored and still wait for processing (``changed_before``: only those older)."""
        since = "" if changed_before is None else " AND updated < ?"
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT id FROM files WHERE status = 'PENDING' AND blob IS NOT NULL{since} ORDER BY updated",
                () if changed_before is None else (changed_before,),
            )
            return [r[0] for r in rows]

    def complete(
        self, file_id: str, processed: str, width: int, height: int, found: Sequence[AssetRow], now: float
    ) -> list[str] | None:
        """Record a file processed: READY, with what was found (JSON) and exactly these assets.

        Returns the blobs of the assets replaced; None if the file is gone (the new assets' blobs are then the
        caller's to unlink).
        """
        with self.db.tx() as conn:
            if conn.execute("SELECT 1 FROM files WHERE id = ?", (file_id,)).fetchone() is None:
                return None
            old = drop_assets(conn, file_id)
            conn.executemany(
                "INSERT INTO assets (file_id, key, blob, mime, size, width, height) VALUES (?,?,?,?,?,?,?)",
                [(file_id, a.key, a.blob, a.mime, a.size, a.width, a.height) for a in found],
            )
            conn.execute(
                "UPDATE files SET status = 'READY', processed = ?, width = ?, height = ?, updated = ? WHERE id = ?",
                (processed, width, height, now, file_id),
            )
            conn.execute("DELETE FROM failures WHERE file_id = ?", (file_id,))
        return old

    def fail(self, file_id: str, reason: str, now: float) -> list[str]:
        """Record a file FAILED with ``reason``; the blobs of any assets it had."""
        with self.db.tx() as conn:
            if conn.execute("SELECT 1 FROM files WHERE id = ?", (file_id,)).fetchone() is None:
                return []
            old = drop_assets(conn, file_id)
            conn.execute(
                "UPDATE files SET status = 'FAILED', processed = NULL, updated = ? WHERE id = ?", (now, file_id)
            )
            conn.execute("INSERT OR REPLACE INTO failures (file_id, reason) VALUES (?, ?)", (file_id, reason))
        return old

    def asset(self, file_id: str, key: str) -> AssetRow | None:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT key, blob, mime, size, width, height FROM assets WHERE file_id = ? AND key = ?", (file_id, key)
            ).fetchone()
        return AssetRow(*row) if row else None
