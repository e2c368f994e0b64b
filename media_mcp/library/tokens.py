"""Signed, expiring tokens for upload and download links (HS256 JWTs, like Wix's).

Expiry is checked against an injected clock, so tests move time instead of waiting.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import jwt

Clock = Callable[[], float]

AUD_DOWNLOAD = "urn:service:file.download"
AUD_ARCHIVE = "urn:service:file.archive"
AUD_UPLOAD = "urn:service:file.upload"
AUD_RESUMABLE = "urn:service:file.upload.tus"

MAX_TOKEN_CHARS = 8000


class TokenInvalid(Exception):
    """Not a token we signed for this purpose (malformed, tampered or for another audience)."""


class TokenExpired(Exception):
    """A genuine token whose time has passed; carries its claims (for the redirect URL)."""

    def __init__(self, claims: dict[str, Any]) -> None:
        super().__init__("token expired")
        self.claims = claims


class Signer:
    """Mints and checks tokens with the library's persistent signing key."""

    def __init__(self, key: bytes, clock: Clock) -> None:
        if not key.strip():
            raise ValueError("the signing key is empty: tokens signed with it could be forged")
        self._key = key
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def mint(self, audience: str, claims: dict[str, Any], *, ttl_seconds: float | None, jti: str | None = None) -> str:
        """Sign ``claims`` for ``audience``; ``jti`` names the token (random unless given)."""
        now = int(self._clock())
        payload: dict[str, Any] = {**claims, "aud": audience, "iat": now, "jti": jti or secrets.token_hex(12)}
        if ttl_seconds is not None:
            payload["exp"] = now + int(ttl_seconds)
        return jwt.encode(payload, self._key, algorithm="HS256")

    def check(self, token: str, audience: str) -> dict[str, Any]:
        """Return the claims of a valid token, or raise `TokenInvalid` / `TokenExpired`."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise TokenInvalid("missing or oversized token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=audience,
                options={"verify_exp": False, "verify_iat": False, "require": ["aud", "iat", "jti"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(str(exc)) from exc
        exp = claims.get("exp")
        if exp is not None and (not isinstance(exp, int | float) or self._clock() >= exp):
            raise TokenExpired(claims)
        return claims
