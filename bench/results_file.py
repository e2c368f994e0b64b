"""Writing a benchmark's results: one JSON document per command, in the same shape for every benchmark."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Protocol


class Check(Protocol):
    passed: bool


def write(
    args: argparse.Namespace,
    name: str,
    began: float,
    environment: dict[str, Any],
    parts: dict[str, Any],
    checks: list[Any],
) -> dict[str, Any]:
    """Save ``args.output`` (parts and checks are dataclasses or None) and return the document."""
    document: dict[str, Any] = {
        "benchmark": name,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began)),
        "duration_seconds": round(time.time() - began, 1),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "environment": environment,
        **{
            key: asdict(value) if is_dataclass(value) and not isinstance(value, type) else value
            for key, value in parts.items()
        },  # fmt: skip
        "checks": [asdict(c) for c in checks],
        "all_passed": all(c.passed for c in checks),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    return document


def environment(*distributions: str) -> dict[str, Any]:
    """Where a benchmark ran: the load at its start, Python, the platform, the CPUs, and the versions of
    ``distributions`` (each under its name, ``-`` as ``_``; None when not installed)."""

    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        **{dist.replace("-", "_"): version(dist) for dist in distributions},
    }
