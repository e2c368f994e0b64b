"""Keep glibc's malloc from holding freed memory for good in a long-running server.

glibc serves allocations of at least its mmap threshold (128 KiB) with their own mappings, and
raises that threshold whenever such a block is freed. A server allocates and frees large buffers
all the time (asyncio reads up to 256 KiB per socket receive, uploads move 1 MiB blocks), so the
threshold soon climbs; from then on those buffers come from the heaps, and the free space they
leave is rarely handed back. Resident memory then creeps up a little with every request. Setting
the threshold once, at start-up, turns the adjustment off and keeps memory flat under load.

It has a price: each of those buffers then gets a fresh mapping. Uploads into the embedded library, which read
the socket 256 KiB at a time, ran at 235-245 MB/s against 417-435 MB/s with the server's threshold at 512 KiB
(512 MiB PUT uploads, measured the same day; see the README for the command). ``MALLOC_MMAP_THRESHOLD_=524288``
in the environment chooses the speed, and the slow growth that comes with it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger("media_mcp")

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, now kept


def pin_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold (Linux with glibc only; a threshold set in the environment is kept)."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):  # musl's mallopt does nothing
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    pinned = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    if not pinned:
        log.debug("mallopt(M_MMAP_THRESHOLD) was refused; memory may creep up under load")
    return pinned
