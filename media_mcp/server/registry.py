"""The tools the server offers, with their titles and annotations, and their registration on an `MCPServer`.

Each tool is a plain async function of the guard (see `media_mcp.server.tools`); this table is the only place
that says which exist, which write, and what they are called.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Literal

from mcp.server.mcpserver.tools import Tool
from mcp.types import ToolAnnotations

from media_mcp.guard.lean import written_as_root
from media_mcp.server import browser
from media_mcp.server.binding import ToolFn, answer_of, bind, signature_settings
from media_mcp.server.tools import browse, read, trash, write
from media_mcp.settings import ServerSettings


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


def offered(settings: ServerSettings) -> list[ToolSpec]:
    """The tools a server with these settings registers (no writing tool in read-only mode)."""
    return [spec for spec in TOOLS if not (settings.read_only and (spec.writes or spec.for_uploads))]


def tools(settings: ServerSettings) -> list[Tool]:
    """The SDK's tools for the offered specs, each built once per process for the settings that shape it (a copy
    per server, so no server sees another's)."""
    return [_tool(spec, tuple((name, getattr(settings, name)) for name in signature_settings(spec.fn)), settings)
            .model_copy() for spec in offered(settings)]  # fmt: skip


def app_only(settings: ServerSettings) -> set[str]:
    """The offered tools that serve the media browser alone."""
    return {spec.name for spec in offered(settings) if spec.app == "only"}


_built: dict[tuple[str, tuple[tuple[str, Any], ...]], Tool] = {}


def _tool(spec: ToolSpec, shape: tuple[tuple[str, Any], ...], settings: ServerSettings) -> Tool:
    """The tool for ``spec`` under the settings values ``shape`` lists (those `bind` reads from ``settings``)."""
    key = (spec.name, shape)
    if key not in _built:
        meta = None
        if spec.app is not None:  # the media browser's page, shown by the host (and for "only", to the app alone)
            meta = browser.tool_meta(["app"] if spec.app == "only" else None)
        with written_as_root(answer_of(spec.fn)):
            _built[key] = Tool.from_function(bind(spec.fn, settings), meta=meta, **_kwargs(spec))
    return _built[key]


def _kwargs(spec: ToolSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "title": spec.title,
        "description": inspect.cleandoc(spec.fn.__doc__ or ""),
        "annotations": spec.annotations,
    }
