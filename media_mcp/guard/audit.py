"""An append-only JSONL record of every write and every minted link: never a URL, never a secret."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from media_mcp.guard.text import hidden_characters

Clock = Callable[[], float]


def _escape_invisible(line: str) -> str:
    """JSON escapes for what ``ensure_ascii=False`` leaves raw but a terminal or a line splitter would act on.

    Ids in an entry can come from the caller: U+2028 or NEL would split the line for many readers, and bidi
    controls would reorder what a person reads. Such characters only occur inside JSON strings, where the
    escape means the same.
    """
    if line.isascii() and line.isprintable():
        return line
    return hidden_characters().sub(lambda match: json.dumps(match.group())[1:-1], line)


class AuditLog:
    """One JSON object per line: time, tool, target ids, outcome, link expiry and a few safe details."""

    def __init__(self, target: Path | str | None, clock: Clock = time.time) -> None:
        self.target = target
        self._clock = clock
        self._lock = threading.Lock()
        if isinstance(target, Path):
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the data directory: owner only

    def record(
        self,
        tool: str,
        outcome: str,
        *,
        files: list[str] | None = None,
        folders: list[str] | None = None,
        **details: Any,
    ) -> None:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._clock())),
            "tool": tool,
            "outcome": outcome,
        }
        if files:
            entry["files"] = files
        if folders:
            entry["folders"] = folders
        entry.update({k: v for k, v in details.items() if v is not None})
        line = _escape_invisible(json.dumps(entry, separators=(",", ":"), ensure_ascii=False)) + "\n"
        if self.target is None:
            return
        with self._lock:
            if self.target == "stderr":
                sys.stderr.write(line)
                sys.stderr.flush()
                return
            fd = os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
