"""Transfer bookkeeping: single-use upload claims, resumable uploads, and zip archive links."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from media_mcp.library.db import Database


@dataclass(frozen=True)
class Resumable:
    id: str
    token_jti: str
    token: str
    length: int
    offset: int
    filename: str | None
    content_type: str | None
    expires: float


@dataclass(frozen=True)
class ArchiveRecord:
    id: str
    file_ids: list[str] | None
    folder_id: str | None


class Records:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- single-use upload tokens ----------------------------------------------------------

    def claim(
        self, jti: str, expires: float, holder: str = "", alive: Callable[[str | None], bool] = lambda _: True
    ) -> str | None:
        """Claim an upload token for one request by ``holder``; None on success, else 'busy' or 'done'.

        A link busy with a request of a process that is gone (``alive`` says no) is claimed again: that request
        can never finish, and its link works again at once instead of when it expires.
        """
        with self.db.tx() as conn:
            row = conn.execute("SELECT status, holder FROM upload_claims WHERE jti = ?", (jti,)).fetchone()
            if row is not None:
                if row["status"] == "busy" and row["holder"] and not alive(row["holder"]):
                    conn.execute("UPDATE upload_claims SET holder = ? WHERE jti = ?", (holder or None, jti))
                    return None
                return str(row["status"])
            conn.execute(
                "INSERT INTO upload_claims (jti, status, expires, holder) VALUES (?, 'busy', ?, ?)",
                (jti, expires, holder or None),
            )
        return None

    def spent(self, jti: str) -> bool:
        """Has this token already brought in its file?"""
        with self.db.read() as conn:
            row = conn.execute("SELECT 1 FROM upload_claims WHERE jti = ? AND status = 'done'", (jti,)).fetchone()
        return row is not None

    def release(self, jti: str) -> None:
        """An upload failed before it stored anything: the token may be used again."""
        with self.db.tx() as conn:
            conn.execute("DELETE FROM upload_claims WHERE jti = ? AND status = 'busy'", (jti,))

    def finish(self, jti: str, file_id: str) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE upload_claims SET status = 'done', file_id = ? WHERE jti = ?", (file_id, jti))

    @staticmethod
    def spend(conn: sqlite3.Connection, jti: str, file_id: str) -> None:
        """Inside the transaction that adds the file: the token is used up, its transfers done."""
        conn.execute("UPDATE upload_claims SET status = 'done', file_id = ? WHERE jti = ?", (file_id, jti))
        conn.execute("DELETE FROM resumable WHERE token_jti = ?", (jti,))

    def forget_stale(self, now: float, *, busy: bool) -> None:
        """At start-up: expired claims and requests need not be remembered.

        ``busy``: also free the links of uploads in progress; only when no other process has the data directory
        open, since then they died with the process that took them.
        """
        with self.db.tx() as conn:
            if busy:
                conn.execute("DELETE FROM upload_claims WHERE status = 'busy'")
            conn.execute("DELETE FROM upload_claims WHERE expires < ?", (now,))
            conn.execute("DELETE FROM upload_requests WHERE expires < ?", (now,))

    # --- upload requests: what an upload token was minted for -------------------------------

    def save_upload_request(self, jti: str, request: dict[str, Any], expires: float, now: float) -> None:
        """Keep a minted upload request server-side (its token carries only ``jti``); forget expired ones."""
        with self.db.tx() as conn:
            conn.execute("DELETE FROM upload_requests WHERE expires < ?", (now,))
            conn.execute(
                "INSERT INTO upload_requests (jti, request, expires) VALUES (?,?,?)",
                (jti, json.dumps(request), expires),
            )

    def upload_request(self, jti: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT request FROM upload_requests WHERE jti = ?", (jti,)).fetchone()
        if row is None:
            return None
        request: dict[str, Any] = json.loads(row[0])
        return request

    # --- resumable (tus) uploads ----------------------------------------------------------

    def create_resumable(self, r: Resumable, now: float, per_token: int) -> bool:
        """Record a new transfer, unless its token already has ``per_token`` unfinished ones."""
        with self.db.tx() as conn:
            active = conn.execute("SELECT count(*) FROM resumable WHERE token_jti = ?", (r.token_jti,)).fetchone()
            if active[0] >= per_token:
                return False
            conn.execute(
                "INSERT INTO resumable (id, token_jti, token, length, offset, filename, content_type, created, expires)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (r.id, r.token_jti, r.token, r.length, r.offset, r.filename, r.content_type, now, r.expires),
            )
        return True

    def get_resumable(self, upload_id: str) -> Resumable | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT * FROM resumable WHERE id = ?", (upload_id,)).fetchone()
        return _resumable(row) if row else None

    def set_offset(self, upload_id: str, offset: int) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE resumable SET offset = ? WHERE id = ?", (offset, upload_id))

    def completed_for(self, token_jti: str) -> Resumable | None:
        """The newest finished transfer made with this token."""
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT * FROM resumable WHERE token_jti = ? AND offset = length ORDER BY created DESC LIMIT 1",
                (token_jti,),
            ).fetchone()
        return _resumable(row) if row else None

    def drop_resumable(self, upload_ids: list[str]) -> None:
        with self.db.tx() as conn:
            conn.executemany("DELETE FROM resumable WHERE id = ?", [(i,) for i in upload_ids])

    def expired_resumable(self, now: float) -> list[str]:
        with self.db.read() as conn:
            return [r[0] for r in conn.execute("SELECT id FROM resumable WHERE expires < ?", (now,))]

    def for_token(self, token_jti: str) -> list[str]:
        with self.db.read() as conn:
            return [r[0] for r in conn.execute("SELECT id FROM resumable WHERE token_jti = ?", (token_jti,))]

    # --- archives ---------------------------------------------------------------------------

    def create_archive(self, archive: ArchiveRecord, now: float) -> None:
        files = json.dumps(archive.file_ids) if archive.file_ids is not None else None
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO archives (id, file_ids, folder_id, created) VALUES (?,?,?,?)",
                (archive.id, files, archive.folder_id, now),
            )

    def get_archive(self, archive_id: str) -> ArchiveRecord | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT * FROM archives WHERE id = ?", (archive_id,)).fetchone()
        if row is None:
            return None
        files = json.loads(row["file_ids"]) if row["file_ids"] else None
        return ArchiveRecord(id=row["id"], file_ids=files, folder_id=row["folder_id"])


def _resumable(row: sqlite3.Row) -> Resumable:
    return Resumable(**{k: row[k] for k in Resumable.__dataclass_fields__})
