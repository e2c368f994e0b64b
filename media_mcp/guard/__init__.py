"""The guard layer: every tool reaches the backend through `Guard`, which owns every guardrail."""

from media_mcp.guard.backend import Backend, StaticBackend
from media_mcp.guard.core import (
    DownloadGrant,
    Guard,
    PersonAnswer,
    Progress,
    RestoreOutcome,
    Root,
    TrashOutcome,
    TrashPlan,
    UploadGrant,
)
from media_mcp.guard.policy import GuardError
from media_mcp.guard.views import Content, FileView, FolderRef, FolderView, ItemResult, Page

__all__ = [
    "Backend",
    "Content",
    "DownloadGrant",
    "FileView",
    "FolderRef",
    "FolderView",
    "Guard",
    "GuardError",
    "ItemResult",
    "Page",
    "PersonAnswer",
    "Progress",
    "RestoreOutcome",
    "Root",
    "StaticBackend",
    "TrashOutcome",
    "TrashPlan",
    "UploadGrant",
]
