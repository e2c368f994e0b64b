"""The guardrails as plain functions: link lifetimes, upload types, local paths, folder scope, errors.

Each rule here has its setting (see `ServerSettings`) and its test.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mcp.server.mcpserver.exceptions import ToolError

from media_mcp import errors
from media_mcp.settings import ServerSettings

if TYPE_CHECKING:
    from media_mcp.wix.client import WixMediaClient
    from media_mcp.wix.models import FileDescriptor

SYSTEM_ROOTS = {"media-root", "trash-root", "visitor-uploads"}
MAX_DEPTH = 64


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
    mime = mime_type.strip().lower()
    return any(fnmatch.fnmatchcase(mime, pattern) for pattern in settings.upload_type_patterns)


def refuse_upload_type(settings: ServerSettings, mime_type: str) -> None:
    if not upload_type_allowed(settings, mime_type):
        raise ToolError(
            f"uploads of type {mime_type!r} are not allowed by this server (browser-executable types such as HTML "
            "and scripts are refused); allowed: " + ", ".join(settings.upload_type_patterns)
        )


def confine(path: str, roots: list[Path]) -> Path:
    """The real file a path names, if it lies inside one of ``roots`` (symlinks resolved first)."""
    if not roots:
        raise ToolError(
            "upload_file is not enabled: the server has no upload roots. Ask the user to set "
            "MEDIA_MCP_UPLOAD_ROOTS, or use a client that shares its roots"
        )
    if "\x00" in path or len(path) > 4096:
        raise ToolError("that path is not valid")
    raw = Path(path).expanduser()
    candidates = [raw] if raw.is_absolute() else [root / raw for root in roots]
    real_roots = [root.resolve() for root in roots]
    for candidate in candidates:
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if any(real.is_relative_to(root) for root in real_roots):
            if not real.is_file():
                raise ToolError(f"{path!r} is not a regular file")
            return real
        raise ToolError(f"{path!r} is outside the allowed upload roots: " + ", ".join(str(r) for r in real_roots))
    raise ToolError(
        f"{path!r} does not exist inside the allowed upload roots: " + ", ".join(str(r) for r in real_roots)
    )


@dataclass
class Scope:
    """Folder scope: with allowed folder ids set, nothing outside those subtrees is seen or touched."""

    allowed: frozenset[str]
    _parents: dict[str, str | None] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.allowed)

    async def folder_in(self, client: WixMediaClient, folder_id: str | None) -> bool:
        if not self.active:
            return True
        seen = 0
        current = folder_id
        while current and seen < MAX_DEPTH:
            if current in self.allowed:
                return True
            if current in SYSTEM_ROOTS:
                return False
            if current not in self._parents:
                try:
                    folder = await client.get_folder(current)
                except errors.NotFound:
                    return False
                self._parents[current] = folder.parent_folder_id
            current = self._parents[current]
            seen += 1
        return False

    async def require_folder(self, client: WixMediaClient, folder_id: str | None) -> None:
        if not await self.folder_in(client, folder_id):
            raise ToolError(f"folder {folder_id!r} is outside the folders this server may use")

    async def require_listed_folder(self, client: WixMediaClient, folder_id: str) -> None:
        """A folder to list must exist: listing a missing one answers an empty page, which misleads the model."""
        if not self.active and folder_id not in SYSTEM_ROOTS:
            await client.get_folder(folder_id)  # NotFound becomes advice that names the folder
        await self.require_folder(client, folder_id)

    async def require_file(self, client: WixMediaClient, file: FileDescriptor) -> None:
        if not await self.folder_in(client, file.parent_folder_id):
            raise ToolError(f"file {file.id!r} is outside the folders this server may use")


def advice(exc: errors.MediaError, subject: str) -> ToolError:
    """A failure the model can act on: what happened, then what to do next."""
    detail = f" ({exc.code}: {exc.description})" if exc.code else f" ({exc.description})"
    if isinstance(exc, errors.NotFound):
        text = f"{subject} was not found{detail}. Find ids with search_files or search_folders; it may be gone for good"
    elif isinstance(exc, errors.InvalidRequest):
        where = f" in {exc.field!r}" if exc.field else ""
        text = f"the media service refused the request{where}{detail}. Fix the argument and call again"
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
    return ToolError(text)
