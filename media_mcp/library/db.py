"""The SQLite database: one connection in WAL mode, used under a lock from a few worker threads."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

P = ParamSpec("P")
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS folders (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    sort_name TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    root TEXT NOT NULL,              -- 'media' | 'visitor'
    state TEXT NOT NULL,             -- 'OK' | 'DELETED'
    trash_parent TEXT,               -- where a directly trashed folder came from
    trashed_by TEXT,                 -- the trashed folder that took this one along
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS folders_parent ON folders (parent_id, state, updated, id);
CREATE INDEX IF NOT EXISTS folders_scope ON folders (state, root, updated, id);
CREATE INDEX IF NOT EXISTS folders_scope_name ON folders (state, root, sort_name, id);
CREATE INDEX IF NOT EXISTS folders_trashed_by ON folders (trashed_by) WHERE trashed_by IS NOT NULL;

CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    sort_name TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    root TEXT NOT NULL,
    state TEXT NOT NULL,
    trash_parent TEXT,
    trashed_by TEXT,
    private INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    hash TEXT NOT NULL,
    blob TEXT,
    width INTEGER NOT NULL DEFAULT 0,
    height INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    source_url TEXT,
    labels TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_parent ON files (parent_id, state, updated, id);
CREATE INDEX IF NOT EXISTS files_parent_name ON files (parent_id, state, sort_name, id);
CREATE INDEX IF NOT EXISTS files_parent_size ON files (parent_id, state, size, id);
CREATE INDEX IF NOT EXISTS files_scope ON files (state, root, updated, id);
CREATE INDEX IF NOT EXISTS files_scope_name ON files (state, root, sort_name, id);
CREATE INDEX IF NOT EXISTS files_scope_size ON files (state, root, size, id);
CREATE INDEX IF NOT EXISTS files_type ON files (state, root, media_type, updated, id);
CREATE INDEX IF NOT EXISTS files_trashed_by ON files (trashed_by) WHERE trashed_by IS NOT NULL;
CREATE INDEX IF NOT EXISTS files_trash_parent ON files (trash_parent) WHERE trash_parent IS NOT NULL;
CREATE VIRTUAL TABLE IF NOT EXISTS files_text USING fts5 (body, tokenize = 'trigram');

CREATE TABLE IF NOT EXISTS upload_claims (
    jti TEXT PRIMARY KEY,
    status TEXT NOT NULL,            -- 'busy' | 'done'
    file_id TEXT,
    expires REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS upload_requests (
    jti TEXT PRIMARY KEY,            -- the upload token that carries only this id
    request TEXT NOT NULL,           -- JSON: mime, name, size, parent, private, labels, path
    expires REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS resumable (
    id TEXT PRIMARY KEY,
    token_jti TEXT NOT NULL,
    token TEXT NOT NULL,
    length INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    filename TEXT,
    content_type TEXT,
    created REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS resumable_token ON resumable (token_jti);

CREATE TABLE IF NOT EXISTS archives (
    id TEXT PRIMARY KEY,
    file_ids TEXT,                   -- JSON list, for a files zip
    folder_id TEXT,                  -- for a folder zip
    created REAL NOT NULL
);
"""


class Database:
    """Owns the connection; every statement runs inside `tx` under one lock."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            # first: other processes may hold the database (switching to WAL, creating the schema) at this moment
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(SCHEMA)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction; rolled back on any exception."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()


STORE_THREADS = 4
"""Worker threads store calls may occupy at once, per event loop.

Store calls take turns on one connection's lock: one works while a few wait next in line, ready the moment it is
free. More threads would only wait on the lock, out of reach of cancellation, each holding a stack and its own
allocator caches: with anyio's default of 40, 50 busy MCP sessions kept 40 threads and 5 MiB more memory, growing
for longer. A call past the limit waits on the event loop instead, where a cancelled caller simply leaves the queue.
Only store calls belong here: file work (probing, hashing, copying) uses anyio's own pool, so a slow file cannot
hold up the store.
"""
_store_threads: RunVar[anyio.CapacityLimiter] = RunVar("media_mcp_store_threads")


def _store_limiter() -> anyio.CapacityLimiter:
    try:
        return _store_threads.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(STORE_THREADS)
        _store_threads.set(limiter)
        return limiter


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking store call off the event loop (at most `STORE_THREADS` at once)."""
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=_store_limiter())
