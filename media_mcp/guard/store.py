"""What the guard must remember beyond one call: its keys, spent confirmations, and where trashed items lived.

Kept in the data directory (owner-only files), so a confirmation works once across restarts and a restore under a
folder scope can prove where an item came from. Several server processes may share the directory: SQLite in WAL
mode serialises their writes, and claiming a token is one ``INSERT`` that only one of them can win.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

SCHEMA = """
CREATE TABLE IF NOT EXISTS spent_tokens (signature TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS trash_origins (
    item_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    origin TEXT NOT NULL,
    trashed_at REAL NOT NULL,
    fingerprint TEXT
);
"""
KEY_FILE = "guard_key"


class Origin(NamedTuple):
    """Where an item this server trashed lived, when it went, and how the trash left it.

    ``fingerprint`` is a digest of the item as read back from the trash right after the move (`views.trash_mark`):
    while the trashed item still matches it, nobody has restored, renamed, moved or trashed it again since, so
    ``folder`` is still where it came from. None when the move was never seen to land (or for a record kept by an
    older version): then the origin proves nothing."""

    folder: str
    trashed_at: float
    fingerprint: str | None = None


@dataclass(frozen=True)
class Keys:
    """Keys derived from one root secret: one for confirmation tokens, one for cursor seals."""

    confirm: bytes
    cursor: bytes

    @classmethod
    def from_root(cls, root: bytes) -> Keys:
        def derive(purpose: str) -> bytes:
            return hmac.new(root, f"media-mcp {purpose} key".encode(), hashlib.sha256).digest()

        return cls(confirm=derive("confirmation"), cursor=derive("cursor"))


def root_secret(configured: str | None, data_dir: Path | None) -> bytes:
    """The configured secret (shared by replicas), else one kept in the data directory, else a fresh one."""
    if configured:
        return configured.encode()
    if data_dir is None:
        return secrets.token_bytes(32)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes().strip()
        if key:
            return key
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)  # an empty file left by a crash mid-write
    try:
        key = secrets.token_hex(32).encode()
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


class GuardStore:
    """Spent confirmation tokens and trash origins, in SQLite (in memory when there is no data directory)."""

    def __init__(self, data_dir: Path | None, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        if data_dir is None:
            target = ":memory:"
        else:
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = data_dir / "guard.sqlite3"
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            target = str(path)
        self._conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None, timeout=10)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(SCHEMA)
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(trash_origins)")}
            if "fingerprint" not in columns:  # a store made before fingerprints: its origins stay unproven
                self._conn.execute("ALTER TABLE trash_origins ADD COLUMN fingerprint TEXT")

    def claim_token(self, signature: str, expires: float) -> bool:
        """Mark a token spent; False if it already was (by this or another process)."""
        with self._lock:
            self._conn.execute("DELETE FROM spent_tokens WHERE expires < ?", (self._clock(),))
            try:
                self._conn.execute("INSERT INTO spent_tokens (signature, expires) VALUES (?, ?)", (signature, expires))
            except sqlite3.IntegrityError:
                return False
        return True

    def release_token(self, signature: str) -> None:
        """The action the token was claimed for failed before it did anything: it may be used again."""
        with self._lock:
            self._conn.execute("DELETE FROM spent_tokens WHERE signature = ?", (signature,))

    def remember_origins(self, origins: Iterable[tuple[str, str, str, str | None]]) -> None:
        """(item id, kind, the folder it was trashed from, its fingerprint in the trash) for items just trashed."""
        now = self._clock()
        with self._lock:
            self._conn.executemany(
                "INSERT OR REPLACE INTO trash_origins (item_id, kind, origin, trashed_at, fingerprint)"
                " VALUES (?, ?, ?, ?, ?)",
                [(item, kind, origin, now, mark) for item, kind, origin, mark in origins],
            )

    def origin(self, item_id: str) -> Origin | None:
        """Where an item was trashed from through this server, when (epoch seconds), and its fingerprint then."""
        with self._lock:
            row = self._conn.execute(
                "SELECT origin, trashed_at, fingerprint FROM trash_origins WHERE item_id = ?", (item_id,)
            ).fetchone()
        return Origin(str(row[0]), float(row[1]), row[2]) if row else None

    def forget_origins(self, item_ids: Iterable[str]) -> None:
        with self._lock:
            self._conn.executemany("DELETE FROM trash_origins WHERE item_id = ?", [(i,) for i in item_ids])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
