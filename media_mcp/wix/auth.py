"""Credentials for the Wix REST API: an API key with a site id, or OAuth client credentials.

Secrets stay in ``SecretStr`` and reach only the ``Authorization`` header of API calls; they are
never logged and never part of an exception's text or a repr.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import anyio
import httpx
from pydantic import SecretStr

from media_mcp.errors import MediaError, PermissionDenied, Unavailable

Clock = Callable[[], float]

REFRESH_MARGIN_SECONDS = 300.0


class Auth(Protocol):
    """What the client needs from a credential."""

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        """Headers that authorise one API call."""
        ...

    def invalidate(self) -> bool:
        """Forget a cached token after a 401; True if a fresh one may fix the call."""
        ...


class ApiKeyAuth:
    """``Authorization: <API key>`` plus ``wix-site-id`` (media APIs are site-level)."""

    def __init__(self, api_key: SecretStr, site_id: str | None) -> None:
        self._api_key = api_key
        self._site_id = site_id

    def __repr__(self) -> str:
        return f"ApiKeyAuth(site_id={self._site_id!r})"

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        headers = {"Authorization": self._api_key.get_secret_value()}
        if self._site_id:
            headers["wix-site-id"] = self._site_id
        return headers

    def invalidate(self) -> bool:
        return False


class OAuthAuth:
    """OAuth client credentials: a token from ``POST /oauth2/token``, cached and refreshed before expiry."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: SecretStr,
        instance_id: str,
        clock: Clock = time.monotonic,
    ) -> None:
        self._token_url = base_url.rstrip("/") + "/oauth2/token"
        self._client_id = client_id
        self._client_secret = client_secret
        self._instance_id = instance_id
        self._clock = clock
        self._token: SecretStr | None = None
        self._expires_at = 0.0
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"OAuthAuth(client_id={self._client_id!r}, instance_id={self._instance_id!r})"

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        async with self._lock:
            if self._token is None or self._clock() >= self._expires_at - REFRESH_MARGIN_SECONDS:
                await self._refresh(http)
            assert self._token is not None
            return {"Authorization": self._token.get_secret_value()}

    def invalidate(self) -> bool:
        had = self._token is not None
        self._token = None
        return had

    async def _refresh(self, http: httpx.AsyncClient) -> None:
        body = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "instance_id": self._instance_id,
        }
        try:
            response = await http.post(self._token_url, json=body)
        except httpx.HTTPError as exc:
            raise Unavailable(f"could not reach the Wix token endpoint ({type(exc).__name__})") from None
        if response.status_code in (400, 401, 403):
            raise PermissionDenied(
                "Wix refused the OAuth client credentials (check WIX_CLIENT_ID, WIX_CLIENT_SECRET, WIX_INSTANCE_ID)",
                code="OAUTH_REFUSED",
                status=response.status_code,
            )
        if response.status_code != 200:
            raise Unavailable("the Wix token endpoint failed", status=response.status_code)
        try:
            data = response.json()
            token = str(data["access_token"])
            expires_in = float(data.get("expires_in", 4 * 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise MediaError("the Wix token endpoint answered an unexpected body", code="OAUTH_BAD_RESPONSE") from exc
        self._token = SecretStr(token)
        self._expires_at = self._clock() + expires_in
