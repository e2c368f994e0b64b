"""The library's data directory: layout, owner-only secrets, and the processes that share it."""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

API_KEY_FILE = "api_key"
SIGNING_KEY_FILE = "signing_key"
PROOF_KEY_FILE = "proof_key"
MEMBERS_FILE = "members.lock"
SECRET_LEFTOVER = re.compile(r"\.(?:api_key|signing_key|proof_key)\.[0-9a-f]+\.tmp")
"""A secret's temporary file (see `DataDir.secret`), which a crash while writing the secret leaves behind."""
IDENT = re.compile(r"[0-9a-f]{32}")
"""A member's ident (see `Membership`)."""
OWNER_FILE = 0o600
OWNER_DIR = 0o700
"""Every file and directory the library keeps in its data directory is its owner's only."""
OWNER_ONLY_MARK = "blobs.owner-only"
"""Its time: when every blob was last made owner-only. Only blob shards changed since are looked through again at
start-up (this version creates blobs owner-only; an older one sharing the directory changes the shard it adds to),
so a start does not stat 100k blobs (about a second)."""
MARK_SLACK = 60.0
"""Seconds before the mark's time from which a changed shard is looked through again (clocks and file systems)."""

log = logging.getLogger("media_mcp.library")


LOCK_NOTICE_SECONDS = 1.0
"""How long a start waits on ``members.lock`` before it says, at WARNING, what it waits for."""
LOCK_POLL_SECONDS = 0.05
"""How often a start waiting on ``members.lock`` tries it again."""


class DataDirBusy(Exception):
    """Another process held ``members.lock`` for longer than a start would wait."""

    def __init__(self, path: Path, waited: float) -> None:
        super().__init__(
            f"waited {waited:.0f} s for {path}, which another media-mcp process on this data directory holds "
            "(cleaning up after a crash, or stuck); stop that process, or start again once it is done"
        )


class DataDirError(Exception):
    """The data directory cannot be used (not a directory, not writable, a damaged database); says which and why."""

    def __init__(self, root: Path, exc: BaseException) -> None:
        super().__init__(f"cannot use data directory {root}: {reason(exc, root)}")


def reason(exc: BaseException, root: Path) -> str:
    """Why ``root`` cannot be used, in one line: the system's words, and the path they are about if another."""
    if isinstance(exc, OSError) and exc.strerror:
        filename = exc.filename
        if isinstance(exc, (NotADirectoryError, FileExistsError)):
            blocking = next((p for p in (root, *root.parents) if p.exists() and not p.is_dir()), None)
            if blocking is not None:
                return f"{blocking} is a file, not a directory"
        text = exc.strerror[0].lower() + exc.strerror[1:]
        return text if filename in (None, str(root)) else f"{text}: {filename}"
    return str(exc) or type(exc).__name__


def restrict(path: str, mode: int) -> None:
    """Give ``path`` exactly ``mode`` (owner-only) if it has another; a symbolic link is left alone, never followed."""
    try:
        found = os.stat(path, follow_symlinks=False).st_mode
        if not stat.S_ISLNK(found) and stat.S_IMODE(found) != mode:
            os.chmod(path, mode)
    except FileNotFoundError:
        pass
    except OSError as exc:  # not ours to change (another owner): say so, and carry on
        log.warning("cannot make %s owner-only: %s", path, exc)


def restrict_tree(root: str) -> None:
    """Make a directory and all under it owner-only; symbolic links are left alone (never followed)."""
    restrict(root, OWNER_DIR)
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                restrict_tree(entry.path)
            else:
                restrict(entry.path, OWNER_FILE)
        except OSError:  # removed meanwhile (another process's upload finishing)
            continue


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

    Each one also holds an exclusive lock on ``members/<ident>.lock`` of its own, for as long as it lives (the
    system drops it when the process ends, however it ends): what it marks as its own work in flight (an upload
    link in use, an import) carries ``ident``, and another process tells whether that work can still finish with
    `DataDir.alive`. Unlike a process id, this holds across containers sharing the directory and is never reused.
    """

    def __init__(
        self, handle: IO[bytes], alone: bool, ident: str = "", own: tuple[IO[bytes], Path] | None = None
    ) -> None:
        self._handle = handle
        self.alone = alone
        self.ident = ident
        self._own = own

    def share(self) -> None:
        """From now on others may join: turn an exclusive lock into a shared one."""
        if self.alone:
            import fcntl

            # not atomic: another process may take the lock exclusively in between, which is harmless, since this
            # one has nothing in flight yet; it waits here until that one shares too
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_SH)
            self.alone = False

    def close(self) -> None:
        if self._own is not None:
            handle, path = self._own
            path.unlink(missing_ok=True)
            handle.close()
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
    def members(self) -> Path:
        """One lock file per process that has the library open (see `Membership`)."""
        return self.root / "members"

    @property
    def quarantine(self) -> Path:
        """Bytes the catalogue does not account for, set aside at start-up instead of deleted (see `blobs`)."""
        return self.root / "quarantine"

    @property
    def api_key_path(self) -> Path:
        return self.root / API_KEY_FILE

    def prepare(self) -> None:
        """Create the layout owner-only, and make owner-only what is already there (older versions left 0644)."""
        for path in (self.root, self.blobs, self.incoming, self.resumable, self.members):
            path.mkdir(mode=OWNER_DIR, parents=True, exist_ok=True)
        os.chmod(self.root, OWNER_DIR)
        # SQLite gives its -wal and -shm files the database's mode: so the database is created owner-only first
        os.close(os.open(self.database, os.O_RDWR | os.O_CREAT, OWNER_FILE))
        self.restrict()

    def restrict(self) -> None:
        """Make every file and directory of the library here owner-only: database (and its -wal, -shm), keys, lock,
        blobs, uploads in flight. Other things a person may keep in the directory are not touched."""
        own = {API_KEY_FILE, SIGNING_KEY_FILE, PROOF_KEY_FILE, MEMBERS_FILE, OWNER_ONLY_MARK}
        trees = {self.incoming.name, self.resumable.name, self.quarantine.name, self.members.name}
        for entry in os.scandir(self.root):
            name = entry.name
            if name in trees and entry.is_dir(follow_symlinks=False):
                restrict_tree(entry.path)
            elif name in own or name.startswith(self.database.name) or (name.startswith(".") and name.endswith(".tmp")):
                restrict(entry.path, OWNER_FILE)
        self._restrict_blobs()

    def _restrict_blobs(self) -> None:
        """Make the blobs owner-only: every one the first time, then those in shards changed since the last time."""
        mark = self.root / OWNER_ONLY_MARK
        try:
            since: float | None = mark.stat().st_mtime - MARK_SLACK
        except FileNotFoundError:
            since = None
        started = time.time()
        restrict(str(self.blobs), OWNER_DIR)
        for shard in os.scandir(self.blobs):
            try:
                if not shard.is_dir(follow_symlinks=False):
                    restrict(shard.path, OWNER_FILE)
                elif since is None or shard.stat(follow_symlinks=False).st_mtime >= since:
                    restrict_tree(shard.path)
                else:
                    restrict(shard.path, OWNER_DIR)
            except OSError:  # removed meanwhile
                continue
        os.close(os.open(mark, os.O_WRONLY | os.O_CREAT, OWNER_FILE))
        os.utime(mark, (started, started))  # only once all went through: a start cut short looks again

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
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_FILE)
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

    def clear_secret_leftovers(self) -> None:
        """Remove the temporary files of secrets a crash left (`SECRET_LEFTOVER`); only for a process that is alone
        (`Membership.alone`), since another may be writing one at this moment."""
        removed = 0
        for entry in os.scandir(self.root):
            if SECRET_LEFTOVER.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:
                    pass
        if removed:
            log.info("removed %d temporary key file(s) left by a crash while writing a key", removed)

    def api_key(self) -> str:
        return self.secret(API_KEY_FILE, ("mml_" + secrets.token_urlsafe(32)).encode()).decode()

    def signing_key(self) -> bytes:
        return self.secret(SIGNING_KEY_FILE, secrets.token_hex(32).encode())

    def proof_key(self) -> bytes:
        """The key a process answers challenges with, proving it serves this directory (see `library.proof`)."""
        return self.secret(PROOF_KEY_FILE, secrets.token_hex(32).encode())

    def join(self, wait: float = 25.0) -> Membership:
        """Join the processes that have this directory open; `Membership.alone` says whether there were none.

        A process holding ``members.lock`` exclusively (one cleaning up alone, or stuck) is waited for at most
        ``wait`` seconds (`DataDirBusy` past them), and said at WARNING after `LOCK_NOTICE_SECONDS`. Where there are
        no advisory locks (Windows) a process never counts as alone, so it never removes what may be another's work
        in flight.
        """
        fd = os.open(self.root / MEMBERS_FILE, os.O_RDWR | os.O_CREAT | os.O_APPEND, OWNER_FILE)
        handle = os.fdopen(fd, "a+b")  # the handle is the lock
        try:
            import fcntl
        except ImportError:
            return Membership(handle, alone=False)
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except OSError:
                # others have it open (shared: granted at once), or one is cleaning up alone: wait for that one
                self._wait_shared(handle, wait)
                alone = False
            ident = secrets.token_hex(16)
            own_path = self.members / f"{ident}.lock"
            own = os.fdopen(os.open(own_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, OWNER_FILE), "a+b")
            try:
                fcntl.flock(own.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BaseException:
                own.close()
                raise
        except BaseException:
            handle.close()
            raise
        return Membership(handle, alone=alone, ident=ident, own=(own, own_path))

    def _wait_shared(self, handle: IO[bytes], wait: float) -> None:
        """Take ``members.lock`` shared, waiting for an exclusive holder at most ``wait`` seconds; say so once."""
        import fcntl

        path = self.root / MEMBERS_FILE
        started = time.monotonic()
        said = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            waited = time.monotonic() - started
            if waited >= wait:
                raise DataDirError(self.root, DataDirBusy(path, waited))
            if not said and waited >= LOCK_NOTICE_SECONDS:
                log.warning(
                    "waiting for %s: another media-mcp process on this data directory holds it (cleaning up after "
                    "a crash, or stuck); giving up after %g s",
                    path,
                    wait,
                )
                said = True
            time.sleep(min(LOCK_POLL_SECONDS, max(0.0, wait - waited)))

    def alive(self, ident: str | None) -> bool:
        """Is the process that joined as ``ident`` still running? Unknown (no ident, no locks here): assumed so."""
        if not ident:
            return True
        try:
            import fcntl
        except ImportError:
            return True
        if not IDENT.fullmatch(ident):
            return True
        path = self.members / f"{ident}.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False  # removed by its process as it closed, or by a process that found it dead
        except OSError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        path.unlink(missing_ok=True)
        return False
