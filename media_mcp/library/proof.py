"""Proving, to a process of the same data directory, that a listening library serves that directory.

Several processes share one data directory and one library port. Before a process hands out links to a port that
some other process holds, it sends a fresh random nonce to `PROOF_PATH` there; the holder answers with a MAC of the
nonce and the address the request reached (its own socket's, not the ``Host`` header), under the directory's
`DataDir.proof_key`. Only a process that can read the data directory knows that key, the answer is good for one
address only (a program on the port cannot pass on the challenge to a library listening elsewhere), and the
challenge carries nothing secret.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

PROOF_PATH = "/.well-known/media-mcp-library/proof"
NONCE = re.compile(r"[A-Za-z0-9_-]{22,128}")
"""A challenge: at least 128 random bits, URL-safe base64."""


def _address(host: str) -> str:
    """One spelling per address (``::1`` and ``0:0::1`` are the same); names are kept as they are."""
    try:
        return ipaddress.ip_address(host.strip("[]")).compressed
    except ValueError:
        return host.lower()


def answer(key: bytes, nonce: str, host: str, port: int) -> str:
    """The proof for ``nonce`` received on ``host``:``port``."""
    message = f"media-mcp library proof\n{_address(host)}\n{port}\n{nonce}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def check(key: bytes, nonce: str, host: str, port: int, proof: object) -> bool:
    """Is ``proof`` the answer to ``nonce`` from a library of this data directory listening on ``host``:``port``?"""
    return isinstance(proof, str) and hmac.compare_digest(proof.encode(), answer(key, nonce, host, port).encode())


async def prove(request: Request) -> Response:
    """``GET PROOF_PATH?nonce=...``: the proof for the address this request reached."""
    nonce = request.query_params.get("nonce", "")
    server = request.scope.get("server")
    if not NONCE.fullmatch(nonce) or not server:
        return JSONResponse({"message": "send ?nonce=<22 to 128 URL-safe characters>"}, status_code=400)
    key: bytes = request.app.state.proof_key
    host, port = server[0], server[1]
    return JSONResponse({"service": "media-mcp-library", "proof": answer(key, nonce, str(host), int(port))})
