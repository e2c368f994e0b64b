"""Signed links and credentials never reach a log: httpx logs every request's full URL at INFO, and ours carry
their token (an import's source may carry a password in its user part, or a token in its fragment).

Upload links hold a signed token in the path (``/upload/<jwt>``), download links in the query (``?token=``);
either authorises whoever holds it. `install` adds a filter to httpx's logger that rewrites such parts to
``[redacted]`` before any handler sees the record, whatever level or handler the host application configures.

The streamable HTTP transport's SSE layer (sse_starlette) logs every chunk it sends at DEBUG: whole tool results,
with upload links, download links and confirmation tokens. Its chunks are logged by size only.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:[a-z0-9_.-]*(?:token|signature|sig|secret|password|credential|api_?key)[a-z0-9_.-]*)=)[^&#\s\"']+"
)
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/?#\s\"'@]*@")
"""Credentials in a URL (``https://user:password@host/``): an import's source may carry them."""
_FRAGMENT = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s\"'#]*#)[^\s\"']+", re.IGNORECASE)
"""A URL's fragment, where signed links and OAuth flows put tokens (``#access_token=``)."""
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_UPLOAD_PATH = re.compile(r"(/upload/(?:tus/)?(?:files/)?)(?!tus(?:/|\b)|files/)[^/?#\s\"']{16,}")
"""A PUT link's token, a tus finishing token, or a tus upload's id (whoever has it can write to that upload)."""
LOGGERS = ("httpx",)
PAYLOAD_LOGGERS = ("sse_starlette.sse",)


def redact(text: str) -> str:
    """``text`` with signed tokens in URLs replaced by ``[redacted]``."""
    text = _USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", text)
    text = _FRAGMENT.sub(lambda m: m.group(1) + REDACTED, text)
    text = _SECRET_QUERY.sub(lambda m: m.group(1) + REDACTED, text)
    text = _UPLOAD_PATH.sub(lambda m: m.group(1) + REDACTED, text)
    return _JWT.sub(REDACTED, text)


class RedactSignedUrls(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class ElidePayloads(logging.Filter):
    """Messages whose arguments are sent bytes (``chunk: %s``) keep only their size."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, bytes | bytearray | str) for a in record.args):
            sizes = [
                f"<{len(a)} bytes not logged>" if isinstance(a, bytes | bytearray | str) else a for a in record.args
            ]
            record.args = tuple(sizes)
        return True


def install() -> None:
    """Add the filters to the loggers that print URLs or payloads (once, however often this is called)."""
    for names, kind in ((LOGGERS, RedactSignedUrls), (PAYLOAD_LOGGERS, ElidePayloads)):
        for name in names:
            logger = logging.getLogger(name)
            if not any(isinstance(f, kind) for f in logger.filters):
                logger.addFilter(kind())
