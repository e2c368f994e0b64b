"""Sealed values the agent carries between calls: search cursors and confirmation tokens.

Both are sealed under keys only the server holds (`store.Keys`), so an edited, foreign or replayed-elsewhere value
is refused. A cursor is encrypted and authenticated (AES-256-GCM), because what it carries is not the agent's to
read; a confirmation token is signed with HMAC-SHA256, its parts in clear. A cursor is bound to the search that made
it (its kind, filters and the folder scope in force); a confirmation token to the action, the exact ids and a digest
of everything they hold.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from typing import Any

MAX_CURSOR_CHARS = 4096
CURSOR_SECONDS = 3600
TOKEN_SECONDS = 300
MAX_TOKEN_CHARS = 512
CURSOR_PAD = 256
"""A cursor's payload is padded to a multiple of this many bytes before it is encrypted (see `CursorSeal`)."""
_NONCE_BYTES = 12
_TAG_BYTES = 16
_CURSOR_AAD = b"media-mcp search cursor"
_CURSOR_CHARS = re.compile(r"[A-Za-z0-9_-]*")


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
    """Opaque cursors: the backend's position, bound to the search and the scope that produced it.

    The whole payload is encrypted and authenticated with AES-256-GCM under the server's cursor key, with a fresh
    random nonce each time. The backend's own cursor is inside it, and that one is not the agent's to read: the
    embedded library's names the sort value and id of the last row it returned, often a row outside the folder scope.
    An edit to any character fails authentication and is refused as altered.

    Only a cursor's length shows through, and only in steps of `CURSOR_PAD` bytes of payload. That length follows the
    backend's cursor, which in the embedded library carries the search text and a row's sort value: an agent that
    lengthens its own search text one character at a time could find where a cursor grows by a step, and so learn
    the length of a sort value (a name's length, a size's number of digits), never the value.

    `cryptography` is imported where it is used, never when this module is: nothing of ours adds it to the server's
    start (the SDK's server loads it there today, for its own reasons).
    """

    def __init__(self, key: bytes, scope: str) -> None:
        self._key = key
        self._scope = scope

    def seal(self, kind: str, filters: Any, position: Any, now: float) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        payload = {"k": kind, "f": digest(filters), "s": self._scope, "p": position, "e": int(now) + CURSOR_SECONDS}
        plain = canonical(payload).encode()
        plain += b" " * (-len(plain) % CURSOR_PAD)  # JSON ignores trailing spaces
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _b64(nonce + AESGCM(self._key).encrypt(nonce, plain, _CURSOR_AAD))

    def open(self, cursor: str, kind: str, filters: Any, now: float) -> Any:
        """The position a cursor carries, if it is ours, intact, current and made for exactly these filters."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        fresh = "drop the cursor to start a new search"
        if not cursor.isascii() or len(cursor) > MAX_CURSOR_CHARS:
            raise SealRefused(f"the cursor is not one this server issued; {fresh}")
        altered = SealRefused(f"the cursor was altered or comes from another server; {fresh}")
        if not _CURSOR_CHARS.fullmatch(cursor):
            raise altered
        try:
            sealed = _unb64(cursor)
        except (ValueError, binascii.Error):
            raise altered from None
        # only the one spelling we issue: base64 leaves spare bits in the last character, which must not vary
        if len(sealed) < _NONCE_BYTES + _TAG_BYTES or _b64(sealed) != cursor:
            raise altered
        try:
            plain = AESGCM(self._key).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _CURSOR_AAD)
        except InvalidTag:
            raise altered from None
        try:
            payload = json.loads(plain)
        except ValueError:  # authenticated, so never expected: treat as foreign
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
