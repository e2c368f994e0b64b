"""The tools the server offers, with their titles and annotations, and their registration on an `MCPServer`.

Each tool is a plain async function of the guard (see `media_mcp.server.tools`); this table is the only place
that says which exist, which write, and what they are called.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

from media_mcp.guard import Guard
from media_mcp.server.binding import ToolFn, bind
from media_mcp.server.tools import read, trash, write


@dataclass(frozen=True)
class ToolSpec:
    fn: ToolFn
    title: str
    writes: bool
    """Writes, or mints a write capability: not registered in read-only mode."""
    destructive: bool = False
    idempotent: bool = True
    open_world: bool = False

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def annotations(self) -> ToolAnnotations:
        return ToolAnnotations(
            title=self.title,
            read_only_hint=not self.writes,
            destructive_hint=self.destructive,
            idempotent_hint=self.idempotent,
            open_world_hint=self.open_world,
        )


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(read.search_folders, "Search folders", writes=False),
    ToolSpec(read.search_files, "Search files", writes=False),
    ToolSpec(read.get_file, "Get file details", writes=False),
    ToolSpec(read.get_folder, "Get a folder", writes=False),
    ToolSpec(read.generate_download_url, "Download link", writes=False),
    ToolSpec(write.generate_upload_url, "Upload link", writes=True, idempotent=False),
    ToolSpec(trash.move_to_trash, "Move to trash", writes=True, destructive=True),
    ToolSpec(trash.restore_from_trash, "Restore from trash", writes=True),
    ToolSpec(write.create_folder, "Create a folder", writes=True, idempotent=False),
    ToolSpec(write.update_file, "Rename, move or relabel a file", writes=True, destructive=True),
    ToolSpec(write.import_file, "Import from a URL", writes=True, idempotent=False, open_world=True),
    ToolSpec(write.upload_file, "Upload a local file", writes=True, idempotent=False),
)


def offered(guard: Guard) -> list[ToolSpec]:
    """The tools this server registers under its settings (no writing tool in read-only mode)."""
    return [spec for spec in TOOLS if not (guard.settings.read_only and spec.writes)]


def register(mcp: MCPServer, guard: Guard) -> None:
    for spec in offered(guard):
        mcp.add_tool(
            bind(spec.fn, guard, guard.settings),
            name=spec.name,
            title=spec.title,
            description=inspect.cleandoc(spec.fn.__doc__ or ""),
            annotations=spec.annotations,
        )
