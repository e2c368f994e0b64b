"""The guardrails that are plain rules: link lifetimes, upload types, local paths, and errors worded for the agent.

Each rule has its setting (see `ServerSettings`) and its test; `media_mcp.guard.Guard` applies them.
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from media_mcp import errors
from media_mcp.settings import ServerSettings


class GuardError(Exception):
    """A refusal or failure the agent can act on; the message says what happened and what to do next."""


def link_minutes(settings: ServerSettings, private: bool, asked: int | None) -> tuple[int, bool]:
    """The life to ask for a download link, and whether the request was cut down."""
    if private:
        cap = settings.private_link_max_minutes
        default = min(settings.private_link_minutes, cap)
    else:
        cap = default = settings.public_link_max_minutes
    if asked is None:
        return default, False
    return (cap, True) if asked > cap else (asked, False)


def upload_type_allowed(settings: ServerSettings, mime_type: str) -> bool:
    """Does the upload policy allow this type? Only a bare ``type/subtype``, matched against the allowed patterns.

    Markup a browser may run — HTML, SVG, every XML-based type (``*/xml``, ``*/*+xml``, ``xml-*``), scripts, other
    active content — is never admitted by a wildcard (``model/*`` is no licence for ``model/vnd.collada+xml``, nor
    ``text/*`` for ``text/html``): only by an allowed entry that names it exactly.
    """
    import re  # here, not at the top: only the upload policy needs it

    mime = mime_type.strip().lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}", mime):
        return False  # parameters, spaces, lists, line breaks: nothing a pattern may be matched against
    subtype = mime.partition("/")[2]
    markup = mime == "multipart/x-mixed-replace" or re.search(
        r"(?:^|[.+-])(?:x?html?|xml|xslt?|svg)(?:$|[.+-])|(?:java|ecma|j|live|vb)script"
        r"|shockwave-flash|futuresplash|^x-component$|^hta$",
        subtype,
    )
    if markup:
        return mime in settings.upload_type_patterns
    return any(fnmatch.fnmatchcase(mime, pattern) for pattern in settings.upload_type_patterns)


def refuse_upload_type(settings: ServerSettings, mime_type: str) -> None:
    """Refuse a type the upload policy does not allow, saying what is allowed."""
    if not upload_type_allowed(settings, mime_type):
        raise GuardError(
            f"uploads of type {mime_type!r} are not allowed by this server (browser-executable types such as HTML, "
            "SVG, any XML-based type and scripts are refused unless allowed by name; a wildcard such as 'model/*' "
            "never covers them); allowed: " + ", ".join(settings.upload_type_patterns)
        )


def open_confined(path: str, roots: list[Path], private: list[Path]) -> tuple[IO[bytes], Path]:
    """The regular file ``path`` names inside one of ``roots`` (and outside every ``private`` directory), opened once.

    Blocking: call it in a worker thread. The name is resolved, then opened without following a final symlink and
    without waiting (a FIFO would block a plain open); the checks are made on what was opened — its type and its
    real path, read back from the descriptor — so a link or a FIFO swapped in between cannot pass. The caller reads
    only from the returned file. A path outside, missing or unreadable gets one answer, so probing reveals nothing.
    """
    if not roots:
        raise GuardError(
            "upload_file is not enabled: the server has no upload roots. Ask the user to set "
            "MEDIA_MCP_UPLOAD_ROOTS, or use a client that shares its roots"
        )
    if "\x00" in path or len(path) > 4096:
        raise GuardError("that path is not valid")
    places = candidates(path, roots)
    real_roots = [root.resolve() for root in roots]
    closed = [directory.resolve() for directory in private]
    for candidate in places:
        try:
            resolved = candidate.resolve(strict=True)
            fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, RuntimeError):
            continue
        try:
            real = _real_path(fd, resolved)
            inside = any(real.is_relative_to(root) for root in real_roots)
            if not inside or any(real.is_relative_to(directory) for directory in closed):
                os.close(fd)
                continue
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise GuardError(f"{path!r} is not a regular file")
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb", buffering=0), real
        except BaseException:
            os.close(fd)
            raise
    raise GuardError(
        f"{path!r} is not a file inside the allowed upload roots: " + ", ".join(str(r) for r in real_roots)
    )


def candidates(path: str, roots: list[Path]) -> list[Path]:
    """Where a path the agent gave may be: itself if absolute, else under each root."""
    try:
        raw = Path(path).expanduser()
    except RuntimeError:  # "~nobody-here/x" names no home directory, so nothing at all
        raw = Path(path)
    return [raw] if raw.is_absolute() else [root / raw for root in roots]


def is_confined_directory(path: str, roots: list[Path], private: list[Path]) -> bool:
    """Whether ``path`` names a directory inside the upload roots (and outside every ``private`` one). Blocking.

    A directory elsewhere answers False, as a missing one does: whether a path exists outside the roots is not the
    agent's to learn."""
    try:
        places = candidates(path, roots)
        real_roots = [root.resolve() for root in roots]
        closed = [directory.resolve() for directory in private]
        for candidate in places:
            if candidate.is_symlink() or not candidate.is_dir():
                continue
            real = candidate.resolve()
            if any(real.is_relative_to(r) for r in real_roots) and not any(real.is_relative_to(c) for c in closed):
                return True
    except (OSError, RuntimeError, ValueError):  # a name the system cannot take names no directory
        return False
    return False


@dataclass(frozen=True)
class LocalFile:
    """A regular file found under an upload root."""

    path: str
    size: int


LIST_DEPTH = 8


def list_confined(
    path: str | None, roots: list[Path], private: list[Path], *, recursive: bool, limit: int
) -> tuple[list[LocalFile], bool]:
    """The regular files in a directory inside the upload roots (each root when ``path`` is None), sorted, at most
    ``limit``, and whether more were left out. Blocking: call it in a worker thread.

    Each directory is opened without following a final symlink and its real path checked from the descriptor, as
    `open_confined` does for files; symbolic links and hidden entries (names starting with a dot) are skipped, and so
    is anything inside a ``private`` directory. What is listed is a hint: an upload opens each file again, checked.
    """
    if not roots:
        raise GuardError(
            "there are no upload roots: ask the user to set MEDIA_MCP_UPLOAD_ROOTS, or to use a client that shares "
            "its roots"
        )
    real_roots = [root.resolve() for root in roots]
    closed = [directory.resolve() for directory in private]
    if path is None:
        tops = real_roots
    else:
        if "\x00" in path or len(path) > 4096:
            raise GuardError("that path is not valid")
        tops = candidates(path, real_roots)
    found: list[LocalFile] = []
    listed = False
    for top in tops:
        pending: list[tuple[Path, int]] = [(top, 0)]
        while pending:
            directory, depth = pending.pop(0)
            try:
                fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                real = _real_path(fd, directory)
                if not any(real.is_relative_to(r) for r in real_roots) or any(real.is_relative_to(c) for c in closed):
                    continue
                listed = True
                with os.scandir(fd) as entries:
                    chosen = sorted(
                        (e for e in entries if not e.name.startswith(".") and not e.is_symlink()), key=lambda e: e.name
                    )
                for entry in chosen:
                    if entry.is_dir(follow_symlinks=False):
                        if recursive and depth < LIST_DEPTH:
                            pending.append((real / entry.name, depth + 1))
                    elif entry.is_file(follow_symlinks=False):
                        if len(found) == limit:
                            return found, True
                        found.append(LocalFile(str(real / entry.name), entry.stat(follow_symlinks=False).st_size))
            finally:
                os.close(fd)
    if not listed:
        raise GuardError(
            f"{path!r} is not a directory inside the allowed upload roots: " + ", ".join(str(r) for r in real_roots)
        )
    return found, False


def _real_path(fd: int, fallback: Path) -> Path:
    """Where an open descriptor really is (Linux: /proc; macOS: F_GETPATH); else the path it was opened by."""
    proc = Path(f"/proc/self/fd/{fd}")
    try:
        # a file unlinked (or renamed over) since it was opened reads back with this suffix; where it was is what
        # counts, and the open file is what gets read
        return Path(os.readlink(proc).removesuffix(" (deleted)"))
    except OSError:
        pass
    getpath = getattr(fcntl, "F_GETPATH", None)
    if getpath is not None:
        raw = fcntl.fcntl(fd, getpath, bytes(1024))
        return Path(os.fsdecode(raw.rstrip(b"\x00")))
    return fallback


def advice(exc: errors.MediaError, subject: str) -> GuardError:
    """A failure the model can act on: what happened, then what to do next."""
    detail = f" ({exc.code}: {exc.description})" if exc.code else f" ({exc.description})"
    if isinstance(exc, errors.NotFound):
        text = f"{subject} was not found{detail}. Find ids with search_files or search_folders; it may be gone for good"
    elif isinstance(exc, errors.InvalidRequest):
        where = f" in {exc.field!r}" if exc.field else ""
        text = f"the media service refused the request{where}{detail}. Fix the argument and call again"
    elif isinstance(exc, errors.PermissionDenied) and exc.code == "READ_ONLY":
        text = "this server is read-only: it cannot upload, move, rename, trash or restore anything"
    elif isinstance(exc, errors.PermissionDenied):
        text = f"the media service refused our credentials{detail}. The server's operator must check them"
    elif isinstance(exc, errors.Conflict):
        text = f"the request clashes with the current state{detail}. Check it with get_file or search, then retry"
    elif isinstance(exc, errors.QuotaExceeded):
        text = f"the site is out of room or the file is too large{detail}"
    elif isinstance(exc, errors.RateLimited):
        wait = f"{exc.retry_after:.0f} seconds" if exc.retry_after else "a minute"
        text = f"the media service is rate-limiting requests; wait {wait} and call again"
    elif isinstance(exc, errors.Unavailable) and exc.code == "OUTCOME_UNKNOWN":  # a write sent, never answered
        text = (
            f"the media service did not confirm this change{detail}. It is a temporary failure, but before calling "
            "again check whether the change was made (search_files, search_folders or get_file), so it is not made "
            "twice"
        )
    elif isinstance(exc, errors.Unavailable):
        text = f"the media service is unavailable right now{detail}. Call again in a moment"
    else:
        text = f"the media service failed{detail}"
    return GuardError(text)
