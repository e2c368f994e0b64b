"""What the guard needs from a backend: an adapter to call, started on demand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from media_mcp.wix.client import WixMediaClient


class Backend(Protocol):
    """Wix, or the embedded library; the entry layer chooses and builds it."""

    kind: Literal["wix", "local"]

    def upload_link_minutes(self, resumable: bool) -> int | None:
        """How long an upload link the backend mints stays valid, if the backend says (Wix does not)."""
        ...

    async def client(self) -> WixMediaClient:
        """The adapter to call (waiting, bounded, for the backend to come up)."""
        ...

    def start(self) -> None:
        """Begin whatever start-up the backend needs, without blocking."""
        ...

    async def aclose(self) -> None: ...


class StaticBackend:
    """A ready adapter: Wix, or a library the caller already runs (tests)."""

    def __init__(
        self, client: WixMediaClient, kind: Literal["wix", "local"], *, link_minutes: tuple[int, int] | None = None
    ) -> None:
        self._client = client
        self.kind = kind
        self._link_minutes = link_minutes
        """The lives of the upload links it mints, PUT and resumable, when known."""

    def upload_link_minutes(self, resumable: bool) -> int | None:
        return None if self._link_minutes is None else self._link_minutes[resumable]

    def start(self) -> None:
        return None

    async def client(self) -> WixMediaClient:
        return self._client

    async def aclose(self) -> None:
        await self._client.aclose()
