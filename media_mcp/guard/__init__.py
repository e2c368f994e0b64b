"""The guard layer: every tool reaches the backend through `Guard`, which owns every guardrail."""

from media_mcp.guard.answers import (
    DownloadGrant,
    FileBrief,
    FolderNode,
    LocalListing,
    PersonAnswer,
    Previews,
    Progress,
    RestoreOutcome,
    Root,
    Summary,
    TrashOutcome,
    TrashPlan,
    UpdateOutcome,
    UploadGrant,
    UploadOutcome,
)
from media_mcp.guard.backend import Backend, StaticBackend
from media_mcp.guard.core import Guard
from media_mcp.guard.policy import GuardError
from media_mcp.guard.views import Content, FileView, FolderRef, FolderView, ItemResult, Page

__all__ = [
    "Backend",
    "Content",
    "DownloadGrant",
    "FileBrief",
    "FileView",
    "FolderNode",
    "FolderRef",
    "FolderView",
    "Guard",
    "GuardError",
    "ItemResult",
    "LocalListing",
    "Page",
    "PersonAnswer",
    "Previews",
    "Progress",
    "RestoreOutcome",
    "Root",
    "StaticBackend",
    "Summary",
    "TrashOutcome",
    "TrashPlan",
    "UpdateOutcome",
    "UploadGrant",
    "UploadOutcome",
]
