"""One mapping from Wix answers and transport failures to the `MediaError` tree."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
from pydantic import ValidationError

from media_mcp import errors as e
from media_mcp.wix.models import ErrorBody

NOT_FOUND_CODES = frozenset({"RESOURCE_NOT_FOUND", "NOT_FOUND", "FILE_NOT_FOUND", "FOLDER_NOT_FOUND"})
QUOTA_CODES = frozenset({"SITE_QUOTA_EXCEEDED", "FILE_SIZE_OVER_LIMIT"})
CONFLICT_CODES = frozenset({"UPLOAD_TOKEN_ALREADY_USED", "UPLOAD_IN_PROGRESS", "FOLDER_CYCLE"})


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait (``Retry-After`` as seconds or an HTTP date)."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _parse_body(response: httpx.Response) -> tuple[str, str, str | None, dict[str, Any]]:
    """(code, description, field, data) from a Wix error body, tolerating anything else."""
    try:
        body = ErrorBody.model_validate(response.json())
    except (ValueError, ValidationError):
        return f"HTTP_{response.status_code}", response.reason_phrase or "error", None, {}
    details = body.details
    if details.application_error is not None:
        app = details.application_error
        return app.code, app.description or body.message, None, app.data
    if details.validation_error is not None and details.validation_error.field_violations:
        first = details.validation_error.field_violations[0]
        code = first.rule_name or "INVALID_ARGUMENT"
        return code, first.description or body.message, first.field, first.data
    return f"HTTP_{response.status_code}", body.message or response.reason_phrase or "error", None, {}


def from_response(response: httpx.Response, now: float | None = None) -> e.MediaError:
    """The error for a non-2xx answer; every status maps to exactly one class."""
    status = response.status_code
    code, description, field, data = _parse_body(response)
    kwargs: dict[str, Any] = {"code": code, "status": status, "field": field, "data": data}
    if code in NOT_FOUND_CODES or status == 404 or status == 410:
        return e.NotFound(description, **kwargs)
    if code in QUOTA_CODES:
        return e.QuotaExceeded(description, **kwargs)
    if code in CONFLICT_CODES or status in (409, 412, 428):
        return e.Conflict(description, **kwargs)
    if status in (401, 403):
        return e.PermissionDenied(description, **kwargs)
    if status == 429:
        return e.RateLimited(description, retry_after=retry_after(response, now), **kwargs)
    if status >= 500 or status < 400:
        return e.Unavailable(description, **kwargs)
    return e.InvalidRequest(description, **kwargs)


def from_transport(exc: httpx.HTTPError, what: str) -> e.MediaError:
    """A failure below HTTP. The message names the kind only: URLs may carry signed tokens."""
    if isinstance(exc, httpx.TimeoutException):
        return e.Unavailable(f"{what}: timed out ({type(exc).__name__})", code="TIMEOUT")
    return e.Unavailable(f"{what}: could not complete the request ({type(exc).__name__})", code="TRANSPORT")


OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
UNSURE_STATUSES = frozenset({500, 502, 504})
"""Answers to a write that say nothing about whether it was done (a 429 or 503 means it was not)."""


def outcome_unknown(what: str, why: str, status: int | None = None) -> e.Unavailable:
    """A write that reached the server but got no usable answer: it may or may not have been done.

    Retryable in the sense that the service may work again, but not blindly: check first, or it may happen twice.
    """
    return e.Unavailable(f"{what}: {why}, so it may or may not have been done", code=OUTCOME_UNKNOWN, status=status)


def never_sent(exc: httpx.HTTPError) -> bool:
    """True if the request provably never reached the server (safe to retry even a create)."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
