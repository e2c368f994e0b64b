"""A processing worker: a child process that processes files one at a time, asked over a pipe (see `processor`).

It runs under limits set before it reads a byte of any file: address space, no core dumps, a lower priority, and for
each file CPU time and the size of what it writes. It speaks JSON both ways, never pickles, so whatever a hostile file
makes of a decoder stays in here. Only the worker imports the decoders (`processing`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

OUTPUT_MIN = 256 << 20
"""Bytes a worker may write to one file at least (renditions, previews), or four times the source if that is more."""


def default_workers() -> int:
    """Half the CPUs this process may use, from 1 to 4: processing leaves room for serving."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus // 2))


@dataclass(frozen=True)
class ProcessingLimits:
    """How much processing may do, at once and per file."""

    workers: int = field(default_factory=default_workers)
    """Worker processes, so files processed at once."""
    timeout_seconds: float = 600.0
    """Wall-clock time one file may take, and its CPU time; past either its worker is killed."""
    memory_bytes: int = 2 << 30
    """Address space of one worker."""
    answer_within_seconds: float = 5.0
    """How long an upload waits for its processing before it answers (PENDING, if processing is not done by then)."""
    jobs_per_worker: int = 100
    """Files a worker processes before a fresh one takes over (what a decoder leaks or fragments goes with it)."""
    max_pixels: int | None = None
    """The largest image or video frame decoded (None: `processing.MAX_PIXELS`)."""
    rendition_heights: tuple[int, ...] | None = None
    """Video renditions, by short side (None: `processing.Limits`' default)."""
    rendition_max_seconds: float | None = None
    """Videos longer than this get no renditions (None: `processing.Limits`' default)."""


def _set(kind: int, soft: int) -> None:
    """Set a soft resource limit (never above the hard one in force)."""
    import resource

    _, hard = resource.getrlimit(kind)
    resource.setrlimit(kind, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _confine(limits: ProcessingLimits) -> None:
    """The worker's own limits, for its whole life."""
    # standard output may be an MCP stdio transport: whatever a decoder prints goes to standard error instead
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        import resource
    except ImportError:  # not on a POSIX system: the timeout still holds
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no copy of a private file's pixels on disk
    _set(resource.RLIMIT_AS, limits.memory_bytes)
    with contextlib.suppress(OSError):
        os.nice(10)  # serving requests comes first


def _budget(limits: ProcessingLimits, size: int) -> None:
    """The limits of one file: CPU time from now (SIGXCPU past it), and the size of each file it writes."""
    try:
        import resource
    except ImportError:
        return
    used = resource.getrusage(resource.RUSAGE_SELF)
    _set(resource.RLIMIT_CPU, math.ceil(used.ru_utime + used.ru_stime + limits.timeout_seconds) + 1)
    _set(resource.RLIMIT_FSIZE, max(OUTPUT_MIN, 4 * size))


def serve(pipe: Connection, limits: ProcessingLimits) -> None:
    """The worker's life: answer each request (a file to process) until the pipe closes."""
    _confine(limits)
    from media_mcp.library import processing  # loaded in the forkserver already

    decode = processing.Limits()
    if limits.max_pixels is not None:
        decode = replace(decode, max_pixels=limits.max_pixels)
    if limits.rendition_heights is not None:
        decode = replace(decode, rendition_heights=limits.rendition_heights)
    if limits.rendition_max_seconds is not None:
        decode = replace(decode, rendition_max_seconds=limits.rendition_max_seconds)
    while True:
        try:
            request = json.loads(pipe.recv_bytes())
        except EOFError:
            return
        _budget(limits, int(request["size"]))
        answer: dict[str, Any]
        try:
            source, out = Path(request["source"]), Path(request["out"])
            result = processing.process(source, request["media_type"], request["mime"], out, decode)
            answer = {"result": result.to_json()}
        except processing.Unprocessable as exc:
            answer = {"error": str(exc)}
        except MemoryError:
            need = f"processing the file needs more than {limits.memory_bytes >> 20} MiB of memory"
            answer = {"error": need, "retire": True}
        except Exception as exc:  # a decoder's own failure on a hostile file: the file fails, a fresh worker goes on
            answer = {"error": f"processing failed unexpectedly ({type(exc).__name__})", "retire": True}
        pipe.send_bytes(json.dumps(answer).encode())
        if answer.get("retire"):
            return
