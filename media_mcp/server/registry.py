"""The tools the server offers, with their titles and annotations, and their registration on an `MCPServer`.

Each tool is a plain async function of the guard (see `media_mcp.server.tools`); this table is the only place
that says which exist, which write, and what they are called.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from media_mcp.guard import Guard
from media_mcp.server import browser
from media_mcp.server.binding import ToolFn, bind
from media_mcp.server.tools import browse, read, trash, write


@dataclass(frozen=True)
class ToolSpec:
    fn: ToolFn
    title: str
    writes: bool
    """Writes, or mints a write capability: not registered in read-only mode."""
    for_uploads: bool = False
    """Reads, but serves only uploads: not registered in read-only mode either."""
    destructive: bool = False
    idempotent: bool = True
    open_world: bool = False
    app: Literal["opens", "only"] | None = None
    """The media browser: "opens" shows it (for the model and the app), "only" serves it alone (kept from the model
    by hosts, left out of the listing and refused for clients without Apps: see `media_mcp.server.browser`)."""

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def annotations(self) -> ToolAnnotations:
        """The hints, each left out where it equals the protocol's default (read-only false, destructive true,
        idempotent false, open world true) or means nothing: every byte of a listing lands in the model's context."""
        if not self.writes:  # the destructive and idempotent hints mean something only for a tool that writes
            return ToolAnnotations(read_only_hint=True, open_world_hint=False if not self.open_world else None)
        return ToolAnnotations(
            destructive_hint=False if not self.destructive else None,
            idempotent_hint=True if self.idempotent else None,
            open_world_hint=False if not self.open_world else None,
        )


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(read.search_folders, "Search folders", writes=False),
    ToolSpec(read.search_files, "Search files", writes=False),
    ToolSpec(read.get_file, "Get file details", writes=False),
    ToolSpec(read.get_folder, "Get folder", writes=False, app="opens"),
    ToolSpec(read.summarize_media, "Summarize media", writes=False),
    ToolSpec(read.preview_files, "Preview files", writes=False),
    ToolSpec(read.generate_download_url, "Download link", writes=False),
    ToolSpec(write.generate_upload_url, "Upload link", writes=True, idempotent=False),
    ToolSpec(trash.move_to_trash, "Move to trash", writes=True, destructive=True),
    ToolSpec(trash.restore_from_trash, "Restore from trash", writes=True),
    ToolSpec(write.create_folder, "Create a folder", writes=True, idempotent=False),
    ToolSpec(write.update_file, "Update files", writes=True, destructive=True),
    ToolSpec(write.update_folder, "Update folder", writes=True, destructive=True),
    ToolSpec(write.import_file, "Import from a URL", writes=True, idempotent=False, open_world=True),
    ToolSpec(read.list_local_files, "Local files", writes=False, for_uploads=True),
    ToolSpec(write.upload_file, "Upload files", writes=True, idempotent=False),
    ToolSpec(browse.browse_media, "Browse media", writes=False, app="only"),
    ToolSpec(browse.browser_thumbnails, "Thumbnails", writes=False, app="only"),
    ToolSpec(browse.browser_trash, "Trash (media browser)", writes=True, destructive=True, app="only"),
)


def offered(guard: Guard) -> list[ToolSpec]:
    """The tools this server registers under its settings (no writing tool in read-only mode)."""
    return [spec for spec in TOOLS if not (guard.settings.read_only and (spec.writes or spec.for_uploads))]


def apps(guard: Guard) -> browser.BrowserApp:
    """The MCP Apps extension with the media browser and the tools that show or serve it (pass it to the server)."""
    extension = browser.BrowserApp(guard.settings)
    for spec in offered(guard):
        if spec.app is not None:
            visibility: list[browser.Visibility] | None = ["app"] if spec.app == "only" else None  # None: both
            extension.tool(resource_uri=browser.URI, visibility=visibility, **_kwargs(spec))(
                bind(spec.fn, guard, guard.settings)
            )
    return extension


def register(mcp: MCPServer, guard: Guard) -> None:
    """Register the tools that are not the media browser's (`apps` brings those)."""
    for spec in offered(guard):
        if spec.app is None:
            mcp.add_tool(bind(spec.fn, guard, guard.settings), **_kwargs(spec))


def _kwargs(spec: ToolSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "title": spec.title,
        "description": inspect.cleandoc(spec.fn.__doc__ or ""),
        "annotations": spec.annotations,
    }
