"""The library's data directory: layout, owner-only secrets, and the processes that share it."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO

API_KEY_FILE = "api_key"
SIGNING_KEY_FILE = "signing_key"
PROOF_KEY_FILE = "proof_key"
MEMBERS_FILE = "members.lock"


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


class Membership:
    """This process's share of a data directory: a lock held on ``members.lock`` until `close`.

    Every process that has the library open holds a shared lock. A process that could take the lock exclusively
    when it joined was alone: nobody else had anything in flight, so it may clean up what a crash left
    (`alone`), then it shares the lock like the others (`share`).
    """

    def __init__(self, handle: IO[bytes], alone: bool) -> None:
        self._handle = handle
        self.alone = alone

    def share(self) -> None:
        """From now on others may join: turn an exclusive lock into a shared one."""
        if self.alone:
            import fcntl

            # not atomic: another process may take the lock exclusively in between, which is harmless, since this
            # one has nothing in flight yet; it waits here until that one shares too
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_SH)
            self.alone = False

    def close(self) -> None:
        self._handle.close()


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
        """Uploads in flight; emptied by a process that starts alone (see `Membership`), never listed."""
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

    def proof_key(self) -> bytes:
        """The key a process answers challenges with, proving it serves this directory (see `library.proof`)."""
        return self.secret(PROOF_KEY_FILE, secrets.token_hex(32).encode())

    def join(self) -> Membership:
        """Join the processes that have this directory open; `Membership.alone` says whether there were none.

        Where there are no advisory locks (Windows) a process never counts as alone, so it never removes what may
        be another's work in flight.
        """
        handle = open(self.root / MEMBERS_FILE, "a+b")  # noqa: SIM115 - the handle is the lock
        try:
            import fcntl
        except ImportError:
            return Membership(handle, alone=False)
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                # others have it open, or one is cleaning up alone: this waits for that one to finish
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
                return Membership(handle, alone=False)
        except BaseException:
            handle.close()
            raise
        return Membership(handle, alone=True)
