"""Sealed values the agent carries between calls: search cursors and confirmation tokens.

Both are signed with HMAC-SHA256 under keys only the server holds (`store.Keys`), so an edited, foreign or
replayed-elsewhere value is refused. A cursor is bound to the search that made it (its kind, filters and the folder
scope in force); a confirmation token to the action, the exact ids and a digest of everything they hold.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Any

MAX_CURSOR_CHARS = 4096
CURSOR_SECONDS = 3600
TOKEN_SECONDS = 300
MAX_TOKEN_CHARS = 512


class SealRefused(Exception):
    """A cursor or token that does not authorise this call; the message says what to do instead."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=True)


def digest(value: Any) -> str:
    """A short, stable digest of a JSON-able value."""
    return _b64(hashlib.sha256(canonical(value).encode()).digest()[:12])


class CursorSeal:
    """Opaque cursors: the backend's position, bound to the search and the scope that produced it."""

    def __init__(self, key: bytes, scope: str) -> None:
        self._key = key
        self._scope = scope

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def seal(self, kind: str, filters: Any, position: Any, now: float) -> str:
        payload = {"k": kind, "f": digest(filters), "s": self._scope, "p": position, "e": int(now) + CURSOR_SECONDS}
        body = _b64(canonical(payload).encode())
        return f"{body}.{self._mac(body)}"

    def open(self, cursor: str, kind: str, filters: Any, now: float) -> Any:
        """The position a cursor carries, if it is ours, intact, current and made for exactly these filters."""
        fresh = "drop the cursor to start a new search"
        if not cursor.isascii() or len(cursor) > MAX_CURSOR_CHARS or cursor.count(".") != 1:
            raise SealRefused(f"the cursor is not one this server issued; {fresh}")
        body, mac = cursor.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            raise SealRefused(f"the cursor was altered or comes from another server; {fresh}")
        try:
            payload = json.loads(_unb64(body))
        except (ValueError, binascii.Error):  # signed by us, so never expected: treat as foreign
            raise SealRefused(f"the cursor is not one this server issued; {fresh}") from None
        if not isinstance(payload, dict) or payload.get("s") != self._scope:
            raise SealRefused(f"the cursor was made under other folder limits; {fresh}")
        if payload.get("k") != kind:
            raise SealRefused(f"the cursor belongs to another kind of search; {fresh}")
        if payload.get("f") != digest(filters):
            raise SealRefused(
                f"the cursor was made for other search arguments; {fresh} with the new arguments, or repeat the "
                "arguments of the first page to read on"
            )
        if not isinstance(payload.get("e"), int) or now >= payload["e"]:
            raise SealRefused(f"the cursor has expired (they last an hour); {fresh}")
        return payload.get("p")


class ConfirmSeal:
    """Confirmation tokens: ``expires.content.nonce.signature`` over the action, the sorted ids, the content digest
    and a random nonce (so two previews of the same items never share a token).

    The content digest travels in clear so that a token whose items changed since the preview can be told apart
    from a forged one: the first gets a fresh preview, the second a refusal.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, action: str, expires: int, files: list[str], folders: list[str], content: str, nonce: str) -> str:
        text = canonical([action, expires, sorted(set(files)), sorted(set(folders)), content, nonce])
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())

    def mint(self, action: str, files: list[str], folders: list[str], content: str, now: float) -> tuple[str, int]:
        expires = int(now) + TOKEN_SECONDS
        nonce = _b64(secrets.token_bytes(8))
        signature = self._sign(action, expires, files, folders, content, nonce)
        return f"{expires}.{content}.{nonce}.{signature}", expires

    def open(self, token: str, action: str, files: list[str], folders: list[str], now: float) -> tuple[str, str, int]:
        """The content digest the token approved, its signature (its identity) and expiry; refuses anything else."""
        again = "call again without it to get a fresh preview and token"
        if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii() or token.count(".") != 3:
            raise SealRefused(f"the confirmation_token is malformed; {again}")
        stamp, content, nonce, signature = token.split(".")
        if not stamp.isdigit() or stamp != str(int(stamp)):
            raise SealRefused(f"the confirmation_token is malformed; {again}")
        expires = int(stamp)
        expected = self._sign(action, expires, files, folders, content, nonce)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise SealRefused(
                "the confirmation_token does not match these ids and this action (or was not issued by this server); "
                f"{again}"
            )
        if now >= expires:
            raise SealRefused(f"the confirmation_token has expired (they last 5 minutes); {again}")
        return content, signature, expires
