"""File ids as Wix accepts them: a bare id, or a ``wix:<type>://v1/<id>/<name>#...`` media URL."""

from __future__ import annotations

import re

_MEDIA_URL = re.compile(r"^wix:[a-z0-9]+://v1/([^/#?]+)", re.IGNORECASE)


def plain_file_id(raw: str) -> str:
    """The bare file id inside a media URL (or the id itself)."""
    raw = raw.strip()
    match = _MEDIA_URL.match(raw)
    return match.group(1) if match else raw
