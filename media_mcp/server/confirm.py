"""Stateless confirmation tokens: an HMAC over the action, the sorted ids and an expiry.

Any replica holding the same secret can check a token; a token for other ids, another action,
a later time or with a forged signature is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence

TOKEN_SECONDS = 300
MAX_TOKEN_CHARS = 512


class TokenRefused(Exception):
    """The confirmation token does not authorise this call; the message says why."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class ConfirmTokens:
    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._clock = clock

    def _sign(self, action: str, expires: int, files: Sequence[str], folders: Sequence[str]) -> bytes:
        canonical = json.dumps([action, expires, sorted(set(files)), sorted(set(folders))], separators=(",", ":"))
        return hmac.new(self._secret, canonical.encode(), hashlib.sha256).digest()

    def mint(self, action: str, files: Sequence[str], folders: Sequence[str]) -> tuple[str, int]:
        """A token for exactly these ids, and when it expires (epoch seconds)."""
        expires = int(self._clock()) + TOKEN_SECONDS
        return f"{expires}.{_b64(self._sign(action, expires, files, folders))}", expires

    def check(self, token: str, action: str, files: Sequence[str], folders: Sequence[str]) -> None:
        # ASCII only: str.isdigit() accepts digits int() cannot read ('²'), and compare_digest needs ASCII
        if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii() or token.count(".") != 1:
            raise TokenRefused("the confirmation_token is malformed; call again without it to get a fresh one")
        stamp, signature = token.split(".")
        if not stamp.isdigit() or stamp != str(int(stamp)):
            raise TokenRefused("the confirmation_token is malformed; call again without it to get a fresh one")
        expires = int(stamp)
        # compare the canonical text, not decoded bytes: base64 decoding ignores stray characters and
        # padding bits, so other strings than the one issued would otherwise pass
        expected = _b64(self._sign(action, expires, files, folders))
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise TokenRefused(
                "the confirmation_token does not match these ids (or was not issued by this server); "
                "call again without it to get a token for exactly these items"
            )
        if self._clock() >= expires:
            raise TokenRefused("the confirmation_token has expired (they last 5 minutes); call again without it")
