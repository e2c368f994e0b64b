"""Store calls run in a few worker threads at most, and a caller that gives up waiting leaves the queue; every
connection's page cache is bounded."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from pathlib import Path

import anyio
import pytest

from media_mcp.library.db import CACHE_KIB, IDLE_READERS, STORE_THREADS, Database, in_thread

pytestmark = pytest.mark.anyio


async def test_store_calls_occupy_at_most_store_threads_worker_threads() -> None:
    running, peak = 0, 0
    count = threading.Lock()
    release = threading.Event()

    def call() -> None:
        nonlocal running, peak
        with count:
            running += 1
            peak = max(peak, running)
        release.wait(10)
        with count:
            running -= 1

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(3 * STORE_THREADS):
                tg.start_soon(in_thread, call)
            await anyio.wait_all_tasks_blocked()
            release.set()
    assert peak == STORE_THREADS


async def test_a_cancelled_store_call_waiting_for_a_thread_never_runs() -> None:
    release = threading.Event()
    ran: list[str] = []
    waiting = anyio.CancelScope()

    def busy() -> None:
        release.wait(10)

    def late() -> None:
        ran.append("late")

    async def caller() -> None:
        with waiting:
            await in_thread(late)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(STORE_THREADS):
                tg.start_soon(in_thread, busy)
            tg.start_soon(caller)  # queued: every store thread is taken
            await anyio.wait_all_tasks_blocked()
            waiting.cancel()  # this caller gives up...
            await anyio.wait_all_tasks_blocked()
            release.set()  # ...and the busy ones finish (a thread's work is never cut short)
    assert ran == []
    assert await in_thread(lambda: 7) == 7  # every slot came back


def test_the_writer_and_every_reader_keep_a_page_cache_of_cache_kib(tmp_path: Path) -> None:
    db = Database(tmp_path / "library.sqlite3")
    try:
        with db.tx() as conn:
            assert conn.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB
        with ExitStack() as held:  # every idle reader, and one opened past them
            readers = [held.enter_context(db.read()) for _ in range(IDLE_READERS + 1)]
            sizes = [reader.execute("PRAGMA cache_size").fetchone()[0] for reader in readers]
        assert sizes == [-CACHE_KIB] * (IDLE_READERS + 1)
        assert CACHE_KIB < 2000  # below SQLite's default, which let the soak's memory grow (see CACHE_KIB)
    finally:
        db.close()
