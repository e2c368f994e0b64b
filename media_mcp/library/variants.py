"""Rendered image variants on disk (Wix image URLs, see `transforms`): atomic writes, a size bound, LRU eviction."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from pathlib import Path

import anyio

from media_mcp.library.datadir import OWNER_DIR, OWNER_FILE

log = logging.getLogger("media_mcp.library")

LOW_WATER = 0.8
"""An eviction pass brings the cache down to this share of its bound, so passes are rare."""
RESCAN_EVERY = 64
"""Variants this process writes between two looks at the cache's real size (other processes write there too)."""
STALE_TMP_SECONDS = 3600.0
"""A temporary file this old is a leftover of a crash, removed by the next eviction pass."""


class VariantCache:
    """Rendered variants on disk, one file each, within ``max_bytes`` (0: none kept); the least recently used go.

    A variant is written to a temporary file and renamed into place, so a reader sees all of it or nothing and
    concurrent renders of one variant (here or in another process sharing the directory) are harmless. Each use sets
    the file's access time, which orders evictions; an eviction pass skips a file used since the pass looked at it.
    """

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.inflight: dict[str, anyio.Event] = {}
        """Variants being rendered by this process: a second request for one waits for it, then reads the cache."""
        self._lock = threading.Lock()
        self._estimate: int | None = None  # bytes in the cache at the last pass plus those written here since
        self._writes = 0

    def path_of(self, key: str, ext: str) -> Path:
        """Where the variant named ``key`` (hex) is kept; ``ext`` is the file name's extension (no dot)."""
        return self.root / key[:2] / f"{key}.{ext}"

    def lookup(self, path: Path) -> os.stat_result | None:
        """The variant's stat if it is cached, marking it used now."""
        try:
            found = os.stat(path)
            os.utime(path, ns=(time.time_ns(), found.st_mtime_ns))  # the mtime (Last-Modified) stays
        except FileNotFoundError:
            return None
        return found

    def store(self, path: Path, data: bytes) -> None:
        """Keep ``data`` as the variant at ``path`` (best effort: a full disk only costs a later render)."""
        if len(data) > self.max_bytes * LOW_WATER:
            return
        try:
            for folder in (self.root, path.parent):
                with contextlib.suppress(FileExistsError):
                    os.mkdir(folder, OWNER_DIR)
            tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_FILE)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())  # a crash must not leave a renamed, empty variant
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot cache the image variant %s: %s", path.name, exc)
            return
        with self._lock:
            self._writes += 1
            if self._estimate is not None:
                self._estimate += len(data)
            due = self._estimate is None or self._estimate > self.max_bytes or self._writes >= RESCAN_EVERY
        if due:
            self.evict(keep=path)

    def evict(self, keep: Path | None = None) -> int:
        """Bring the cache under its bound, least recently used first (never ``keep``); returns the bytes left."""
        entries: list[tuple[int, int, str]] = []
        total = 0
        now = time.time()
        with contextlib.suppress(FileNotFoundError):
            for shard in os.scandir(self.root):
                if not shard.is_dir(follow_symlinks=False):
                    continue
                for entry in os.scandir(shard.path):
                    with contextlib.suppress(FileNotFoundError):
                        found = entry.stat(follow_symlinks=False)
                        if entry.name.endswith(".tmp"):
                            if now - found.st_mtime > STALE_TMP_SECONDS:
                                os.unlink(entry.path)
                            continue
                        total += found.st_size
                        entries.append((found.st_atime_ns, found.st_size, entry.path))
        if total > self.max_bytes:
            target = self.max_bytes * LOW_WATER
            for used, size, victim in sorted(entries):
                if total <= target:
                    break
                with contextlib.suppress(FileNotFoundError):
                    if victim == str(keep) or os.stat(victim).st_atime_ns != used:
                        continue  # just written, or used since it was looked at: a request may be sending it
                    os.unlink(victim)
                    total -= size
        with self._lock:
            self._estimate, self._writes = total, 0
        return total
