"""The library's Starlette application: the Wix REST API under its two prefixes, plus transfer links."""

from __future__ import annotations

import hmac
import logging

import anyio
import httpx
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from media_mcp.library import api_files, api_folders, downloads, proof, uploads
from media_mcp.library.errors import ApiError, from_pydantic
from media_mcp.library.importer import Guard, Resolver, system_resolver
from media_mcp.library.service import Library

log = logging.getLogger("media_mcp.library")

API_PREFIXES = ("/site-media/v1", "/wix-privatemedia-proxy-server/v1")


class RequireApiKey:
    """Every REST call carries ``Authorization: <API key>`` (a ``Bearer`` prefix is tolerated)."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        if not key.strip():
            raise ValueError("the library API key is empty: refusing to serve the API without authentication")
        self.app = app
        self.key = key.strip().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            sent = ""
            for name, value in scope["headers"]:
                if name == b"authorization":
                    sent = value.decode("latin-1").strip()
            if sent[:7].lower() == "bearer ":
                sent = sent[7:].strip()
            if not hmac.compare_digest(sent.encode("latin-1"), self.key):
                reason = "missing Authorization header" if not sent else "the API key is not valid"
                error = ApiError(401, "UNAUTHENTICATED", f"{reason}: send Authorization: <library API key>")
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    return from_pydantic(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    return ApiError(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {})).response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return ApiError(500, "INTERNAL", "the library hit an unexpected error; see its log").response()


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "service": "media-mcp-library"})


def create_app(
    library: Library,
    *,
    import_transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver | None = None,
) -> Starlette:
    """Build the ASGI app over an open `Library`; the caller owns the library's lifetime."""
    api = RequireApiKey(Router(routes=[*api_files.routes, *api_folders.routes]), library.api_key)
    handlers = {
        ApiError: _api_error,
        ValidationError: _validation_error,
        HTTPException: _http_error,
        Exception: _unexpected,
    }
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route(proof.PROOF_PATH, proof.prove, methods=["GET"]),
            *[Mount(prefix, app=api) for prefix in API_PREFIXES],
            *uploads.routes,
            *downloads.routes,
        ],
        exception_handlers=handlers,
    )
    app.state.library = library
    app.state.proof_key = library.data.proof_key()
    app.state.import_guard = Guard(
        allow_private=library.settings.library_allow_private_imports, resolver=resolver or system_resolver
    )
    app.state.import_transport = import_transport
    app.state.archive_slots = anyio.Semaphore(downloads.ARCHIVE_SLOTS)
    return app
