"""The errors every layer above the adapter sees, whichever backend answered.

    MediaError                  base: keeps the backend's code, description and HTTP status
    ├── NotFound                the file or folder does not exist (or is gone for good)
    ├── InvalidRequest          the request breaks a rule; ``field`` names the culprit if known
    ├── PermissionDenied        bad, missing or insufficient credentials (401/403)
    ├── Conflict                the request clashes with the current state (409, 428)
    ├── QuotaExceeded           storage quota or file size limit
    ├── RateLimited             too many requests (429); ``retry_after`` seconds if known
    └── Unavailable             the backend failed or could not be reached (5xx, timeouts, transport)

``retryable`` says whether the same request may simply be sent again later.
"""

from __future__ import annotations

from typing import Any


class MediaError(Exception):
    retryable = False

    def __init__(
        self,
        description: str,
        *,
        code: str = "",
        status: int | None = None,
        field: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.code = code
        self.status = status
        self.field = field
        self.data = data or {}

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        code = f"{self.code}: " if self.code else ""
        return f"{code}{self.description}{where}"


class NotFound(MediaError):
    pass


class InvalidRequest(MediaError):
    pass


class PermissionDenied(MediaError):
    pass


class Conflict(MediaError):
    pass


class QuotaExceeded(MediaError):
    pass


class RateLimited(MediaError):
    retryable = True

    def __init__(self, description: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(description, **kwargs)
        self.retry_after = retry_after


class Unavailable(MediaError):
    retryable = True
