"""Stateless confirmation tokens: an HMAC over the action, the sorted ids and an expiry.

Any replica holding the same secret can check a token; a token for other ids, another action,
a later time or with a forged signature is refused. A token that has done its work is spent: the
same server accepts it again only while that repeats nothing (the items are all still in the trash),
so a replay after a restore asks the user again (replicas keep their own record of spent tokens).
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
        self._spent: dict[str, int] = {}
        """Signatures of tokens that were used, with their expiry (pruned once past it)."""
        self._minted: dict[str, int] = {}
        """Signatures handed out and not yet expired: each preview gets a token of its own."""

    def _sign(self, action: str, expires: int, files: Sequence[str], folders: Sequence[str]) -> bytes:
        canonical = json.dumps([action, expires, sorted(set(files)), sorted(set(folders))], separators=(",", ":"))
        return hmac.new(self._secret, canonical.encode(), hashlib.sha256).digest()

    def mint(self, action: str, files: Sequence[str], folders: Sequence[str]) -> tuple[str, int]:
        """A token for exactly these ids, and when it expires (epoch seconds)."""
        now = self._clock()
        self._minted = {sig: exp for sig, exp in self._minted.items() if exp > now}
        expires = int(now) + TOKEN_SECONDS
        # the same ids in the same second sign the same: a later expiry keeps each preview's token its own, so
        # spending one (two sessions, or trash, restore, trash again) never refuses another as "already used"
        while (signature := _b64(self._sign(action, expires, files, folders))) in self._minted:
            expires += 1
        self._minted[signature] = expires
        return f"{expires}.{signature}", expires

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

    def spent(self, token: str) -> bool:
        """Whether ``token`` already did its work on this server (see `spend`)."""
        return token.partition(".")[2] in self._spent

    def spend(self, token: str) -> None:
        """Record that ``token`` (already checked) did its work: replaying it may only repeat a no-op."""
        now = self._clock()
        self._spent = {sig: exp for sig, exp in self._spent.items() if exp > now}
        stamp, _, signature = token.partition(".")
        self._spent[signature] = int(stamp)
