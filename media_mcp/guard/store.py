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

SCHEMA = """
CREATE TABLE IF NOT EXISTS spent_tokens (signature TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS trash_origins (
    item_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    origin TEXT NOT NULL,
    trashed_at REAL NOT NULL
);
"""
KEY_FILE = "guard_key"


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

    def remember_origins(self, origins: Iterable[tuple[str, str, str]]) -> None:
        """(item id, kind, the folder it was trashed from) for items just moved to the trash."""
        now = self._clock()
        with self._lock:
            self._conn.executemany(
                "INSERT OR REPLACE INTO trash_origins (item_id, kind, origin, trashed_at) VALUES (?, ?, ?, ?)",
                [(item, kind, origin, now) for item, kind, origin in origins],
            )

    def origin(self, item_id: str) -> tuple[str, float] | None:
        """Where an item was trashed from through this server, and when (epoch seconds)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT origin, trashed_at FROM trash_origins WHERE item_id = ?", (item_id,)
            ).fetchone()
        return (str(row[0]), float(row[1])) if row else None

    def forget_origins(self, item_ids: Iterable[str]) -> None:
        with self._lock:
            self._conn.executemany("DELETE FROM trash_origins WHERE item_id = ?", [(i,) for i in item_ids])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
