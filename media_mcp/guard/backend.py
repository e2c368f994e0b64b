"""What the guard needs from a backend: an adapter to call, started on demand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from media_mcp.wix.client import WixMediaClient


class Backend(Protocol):
    """Wix, or the embedded library; the entry layer chooses and builds it."""

    kind: Literal["wix", "local"]

    async def client(self) -> WixMediaClient:
        """The adapter to call (waiting, bounded, for the backend to come up)."""
        ...

    def start(self) -> None:
        """Begin whatever start-up the backend needs, without blocking."""
        ...

    async def aclose(self) -> None: ...


class StaticBackend:
    """A ready adapter: Wix, or a library the caller already runs (tests)."""

    def __init__(self, client: WixMediaClient, kind: Literal["wix", "local"]) -> None:
        self._client = client
        self.kind = kind

    def start(self) -> None:
        return None

    async def client(self) -> WixMediaClient:
        return self._client

    async def aclose(self) -> None:
        await self._client.aclose()
