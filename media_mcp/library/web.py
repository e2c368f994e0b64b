"""Small HTTP helpers shared by the library's endpoints."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from media_mcp.library.errors import ApiError
from media_mcp.library.service import Library
from media_mcp.wix.models import WixModel

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BYTES = 1024 * 1024
LIST_PARAMS = frozenset({"mediaTypes"})


def library(request: Request) -> Library:
    lib: Library = request.app.state.library
    return lib


def base_url(request: Request) -> str:
    """Where minted links point: the configured public URL, else the URL this request came in on."""
    configured = library(request).settings.library_public_url
    if configured:
        return configured.rstrip("/")
    url = request.url  # Starlette checks the Host header here and falls back to the server address
    return f"{url.scheme}://{url.netloc}"


async def read_json(request: Request, model: type[M]) -> M:
    """Parse and validate a JSON body of bounded size (validation errors become Wix field violations)."""
    declared = request.headers.get("content-length")
    if declared and re.fullmatch(r"[0-9]{1,19}", declared) and int(declared) > MAX_JSON_BYTES:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"request bodies are limited to {MAX_JSON_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise ApiError(413, "PAYLOAD_TOO_LARGE", f"request bodies are limited to {MAX_JSON_BYTES} bytes")
    try:
        data: Any = json.loads(body) if body.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "INVALID_JSON", f"the request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ApiError(400, "INVALID_JSON", "the request body is nested too deeply") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "INVALID_JSON", "the request body must be a JSON object")
    return model.model_validate(data)


def read_query(request: Request, model: type[M]) -> M:
    """Validate GET parameters flattened Wix's way: dots for nesting, repeated keys for arrays."""
    data: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        value: Any = values if key in LIST_PARAMS or len(values) > 1 else values[0]
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ApiError(400, "INVALID_ARGUMENT", f"query parameter {key!r} clashes with another")
            node = child
        node[leaf] = value
    return model.model_validate(data)


def respond(message: WixModel, status: int = 200, background: BackgroundTask | None = None) -> Response:
    """Answer a REST shape as Wix writes it: `WixModel.to_wire`, encoded by pydantic in one pass."""
    body = message.model_dump_json(by_alias=True, exclude_none=True)
    return Response(body, status, media_type="application/json", background=background)
