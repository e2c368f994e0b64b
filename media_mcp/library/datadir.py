"""The library's data directory: layout, owner-only secrets, and a lock against two processes."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO

API_KEY_FILE = "api_key"
SIGNING_KEY_FILE = "signing_key"
LOCK_FILE = "library.lock"


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a new or renamed file in it) durable, where the platform allows."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class DataDirBusy(Exception):
    """Another library process holds the data directory."""


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def database(self) -> Path:
        return self.root / "library.sqlite3"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def incoming(self) -> Path:
        """Uploads in flight; emptied at start-up, never listed."""
        return self.root / "incoming"

    @property
    def resumable(self) -> Path:
        """Partial resumable (tus) uploads; kept across restarts."""
        return self.root / "resumable"

    @property
    def api_key_path(self) -> Path:
        return self.root / API_KEY_FILE

    def prepare(self) -> None:
        for path in (self.root, self.blobs, self.incoming, self.resumable):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def secret(self, name: str, make: bytes) -> bytes:
        """Read an owner-only secret file, creating it with ``make`` on first use.

        The value is written to a temporary file, fsynced, then published under its name, so a crash
        never leaves a half-written secret; an empty (or blank) file, as older versions could leave
        after a crash, counts as missing and is replaced.
        """
        if not make.strip():
            raise ValueError(f"refusing to store an empty secret in {name!r}")
        path = self.root / name
        try:
            current: bytes | None = path.read_bytes().strip()
        except FileNotFoundError:
            current = None
        if current:
            return current
        tmp = self.root / f".{name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(make)
                fh.flush()
                os.fsync(fh.fileno())
            if current is None:
                try:
                    os.link(tmp, path)  # publish only if nobody did meanwhile (replicas may race here)
                except FileExistsError:
                    return self.secret(name, make)
                except OSError:  # no hard links on this file system
                    os.replace(tmp, path)
            else:
                os.replace(tmp, path)
            fsync_dir(self.root)
        finally:
            tmp.unlink(missing_ok=True)
        return make.strip()

    def api_key(self) -> str:
        return self.secret(API_KEY_FILE, ("mml_" + secrets.token_urlsafe(32)).encode()).decode()

    def signing_key(self) -> bytes:
        return self.secret(SIGNING_KEY_FILE, secrets.token_hex(32).encode())

    def lock(self) -> IO[bytes]:
        """Hold an exclusive lock on the directory for the life of the returned handle."""
        handle = open(self.root / LOCK_FILE, "a+b")  # noqa: SIM115 - the handle is the lock
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; one process per directory is on the user
            return handle
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise DataDirBusy(f"{self.root} is in use by another media-mcp library process") from exc
        return handle
