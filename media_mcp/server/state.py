"""What every tool shares: settings, the backend, the audit log, confirmation tokens and the scope."""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from media_mcp import errors
from media_mcp.server.audit import AuditLog
from media_mcp.server.backend import Backend
from media_mcp.server.confirm import ConfirmTokens
from media_mcp.server.fencing import visible
from media_mcp.server.policy import Scope, advice
from media_mcp.settings import ServerSettings

if TYPE_CHECKING:
    from media_mcp.wix.client import WixMediaClient

T = TypeVar("T")
ORIGINS_KEPT = 100_000


@dataclass
class ServerState:
    settings: ServerSettings
    backend: Backend
    audit: AuditLog
    tokens: ConfirmTokens
    clock: Callable[[], float] = time.time
    origins: dict[str, str] = field(default_factory=dict)
    """Where trashed items came from, under a folder scope: all of them, or, when the audit log is a file that also
    has them, the newest `ORIGINS_KEPT`; dropped on restore."""

    def remember_origins(self, origins: dict[str, str]) -> None:
        if not self.settings.allowed_folder_ids:  # only a folder scope asks where a restored item came from
            return
        self.origins.update(origins)
        if not self.audit.recalls:  # nothing else remembers them: keep them all
            return
        for stale in list(itertools.islice(self.origins, max(len(self.origins) - ORIGINS_KEPT, 0))):
            del self.origins[stale]

    def forget_origins(self, ids: list[str]) -> None:
        for item in ids:
            self.origins.pop(item, None)

    def scope(self) -> Scope:
        """A fresh scope per call: folder moves elsewhere must not be hidden by a stale cache."""
        return Scope(frozenset(self.settings.allowed_folder_ids))

    async def call(self, subject: str, op: Callable[[WixMediaClient], Awaitable[T]]) -> T:
        """Run one backend operation; media failures become tool errors that say what to do next."""
        try:
            client = await self.backend.client()
            return await op(client)
        except errors.MediaError as exc:
            raise advice(exc, visible(subject)) from None
        except ValidationError as exc:  # a request model refused an argument (answers are checked in the adapter)
            fields = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()
            )
            raise ToolError(
                f"{visible(subject)}: an argument does not fit the media API ({visible(fields, 500)}); fix it and call "
                "again"
            ) from None
