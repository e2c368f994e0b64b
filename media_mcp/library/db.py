"""The SQLite database in WAL mode: one writer connection under a lock, and read-only connections for reads."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
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
    updated REAL NOT NULL,
    processed TEXT                   -- JSON: what processing found (older databases get it from Catalog.upgrade)
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

CREATE INDEX IF NOT EXISTS files_pending ON files (updated) WHERE status = 'PENDING';

CREATE TABLE IF NOT EXISTS assets (  -- what processing derived from a file: previews, renditions
    file_id TEXT NOT NULL,
    key TEXT NOT NULL,               -- the asset key (generate-file-download-url assetKeys)
    blob TEXT NOT NULL,
    mime TEXT NOT NULL,
    size INTEGER NOT NULL,
    width INTEGER NOT NULL DEFAULT 0,
    height INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (file_id, key)
);

CREATE TABLE IF NOT EXISTS failures (file_id TEXT PRIMARY KEY, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS imports (  -- imports being fetched: by which member (`datadir.Membership`), since when
    file_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    started REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS upload_claims (
    jti TEXT PRIMARY KEY,
    status TEXT NOT NULL,            -- 'busy' | 'done'
    file_id TEXT,
    expires REAL NOT NULL,
    holder TEXT                      -- the member (`datadir.Membership`) whose request has it busy
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


PROGRESS_STEPS = 10_000
"""SQLite virtual machine steps between two looks at a read's time budget (well under a millisecond of work)."""
IDLE_READERS = 8
"""Read connections kept open between reads; one read holds one, so about as many as reads run at once."""
CACHE_KIB = 512
"""The page cache of each connection, in KiB (SQLite's default is 2,000).

With SQLite's default, the memory soak (`python -m bench reliability --only load`) grew 0.39-0.51 MiB a round over
its last half in four runs; with 512 KiB, 0.04-0.08 in three, at about the same throughput (270-286 calls/s against
290 the same evening; docs/reliability.md). SQLite's own bytes in use stayed flat in both (about 3.4 and 1.9 MiB), so
the caches do not grow. The likely reason: in WAL mode a connection drops its cache whenever another has written,
then fills it again page by page from whichever worker thread reads next, and smaller caches scatter less of that
over the threads' arenas. A page no cache holds is read from the operating system's file cache, which keeps the
database file all the same.
"""


class Database:
    """Owns the connections: writes run inside `tx` on one connection under one lock; reads (`read`) each on a
    read-only connection of their own, so a long read holds up neither the writer nor other reads (WAL)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._idle_lock = threading.Lock()
        self._closed = False
        with self._lock:
            # first: other processes may hold the database (switching to WAL, creating the schema) at this moment
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
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

    def read(self) -> AbstractContextManager[sqlite3.Connection]:
        """One read transaction (a consistent snapshot) on a read-only connection no other read uses meanwhile."""
        return self.read_within(None)

    @contextmanager
    def read_within(self, budget: float | None) -> Iterator[sqlite3.Connection]:
        """`read`, whose statements may run ``budget`` seconds in all; past it SQLite stops the running statement,
        which raises `sqlite3.OperationalError` ("interrupted")."""
        conn = self._reader()
        try:
            if budget is not None:
                deadline = time.perf_counter() + budget
                conn.set_progress_handler(lambda: time.perf_counter() >= deadline, PROGRESS_STEPS)
            conn.execute("BEGIN")
            yield conn
        finally:
            self._release(conn)

    def _reader(self) -> sqlite3.Connection:
        with self._idle_lock:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            if self._idle:
                return self._idle.pop()  # the most recently used: its page cache is warm
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA query_only=ON")
            conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _release(self, conn: sqlite3.Connection) -> None:
        """End the read and keep the connection for the next one (or close it, if it is broken or not needed)."""
        try:
            conn.set_progress_handler(None, 0)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            conn.close()
            return
        with self._idle_lock:
            if not self._closed and len(self._idle) < IDLE_READERS:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close the connections; a read still running closes its connection when it ends."""
        with self._idle_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        with self._lock:
            self._conn.close()


STORE_THREADS = 2
"""Worker threads store calls may occupy at once, per event loop.

Writes take turns on the writer's lock and reads each take a connection of their own: two threads keep the store
busy. More threads would mostly wait on the lock, out of reach of cancellation, each holding a stack and, in glibc,
an arena of its own that keeps the memory freed in it: with anyio's default of 40, 50 busy MCP sessions kept 40
threads and 5 MiB more memory; with 4 store and 4 search threads, the memory soak still grew 1.2-1.4 MiB a round,
with 2 and 2 0.48 and 0.59 over 12 rounds, and 0.39, 0.40 and 0.51 over the last half of 30 (at the same throughput;
docs/reliability.md), then 0.04-0.08 with the page caches bounded (`CACHE_KIB`). A call past the limit waits on
the event loop instead, where a cancelled caller simply leaves the queue.
Only store calls belong here: file work (probing, hashing, copying) uses anyio's own pool, so a slow file cannot
hold up the store.
"""
SEARCH_THREADS = 2
"""Worker threads listings and searches may occupy at once, per event loop, apart from `STORE_THREADS`.

A search may run up to its time budget: however many run at once, they wait for each other here and never take
the threads that gets, updates and uploads need.
"""
_store_threads: RunVar[anyio.CapacityLimiter] = RunVar("media_mcp_store_threads")
_search_threads: RunVar[anyio.CapacityLimiter] = RunVar("media_mcp_search_threads")


def _limiter(slot: RunVar[anyio.CapacityLimiter], size: int) -> anyio.CapacityLimiter:
    try:
        return slot.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(size)
        slot.set(limiter)
        return limiter


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking store call off the event loop (at most `STORE_THREADS` at once)."""
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=_limiter(_store_threads, STORE_THREADS))


async def in_search_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a listing or search off the event loop (at most `SEARCH_THREADS` at once, beside the store calls)."""
    limiter = _limiter(_search_threads, SEARCH_THREADS)
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=limiter)
