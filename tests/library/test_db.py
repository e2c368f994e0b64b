"""Quick reads run on the event loop only when the store is free and the read stays quick."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest

from media_mcp.library.db import STORE_THREADS, Database, NotHere, in_thread, quick_read

pytestmark = pytest.mark.anyio

SLOW_SQL = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) SELECT sum(i) FROM n"
SLOW_N = 300_000  # tens of milliseconds of SQLite work: far past the budget


class Reads:
    """Reads that note the thread they ran on."""

    def __init__(self, database: Database) -> None:
        self.db = database
        self.threads: list[int] = []
        self.entered = threading.Event()

    def small(self) -> int:
        self.threads.append(threading.get_ident())
        self.entered.set()
        with self.db.read() as conn:
            value: int = conn.execute("SELECT 41 + 1").fetchone()[0]
        return value

    def big(self, n: int = SLOW_N) -> int:
        self.threads.append(threading.get_ident())
        with self.db.read() as conn:
            value: int = conn.execute(SLOW_SQL, (n,)).fetchone()[0]
        return value

    def broken(self) -> None:
        with self.db.read() as conn:
            conn.execute("SELECT * FROM no_such_table")


@pytest.fixture
def reads(tmp_path: Path) -> Reads:
    return Reads(Database(tmp_path / "test.db"))


async def test_a_small_read_on_a_free_store_runs_in_the_calling_thread(reads: Reads) -> None:
    assert await quick_read(reads.db, reads.small) == 42
    assert reads.threads == [threading.get_ident()]


async def test_a_busy_store_sends_the_read_to_a_worker_thread(reads: Reads) -> None:
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with reads.db.read():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        with pytest.raises(NotHere):
            reads.db.read_here(reads.small)
        async with anyio.create_task_group() as tg:
            result: list[int] = []

            async def read() -> None:
                result.append(await quick_read(reads.db, reads.small))

            tg.start_soon(read)
            assert await anyio.to_thread.run_sync(reads.entered.wait, 10)  # a worker thread waits for the lock...
            release.set()  # ...while the event loop is free
        assert result == [42]
        assert reads.threads[-1] != threading.get_ident()
    finally:
        release.set()
        holder.join(10)


async def test_a_slow_read_is_cut_short_then_done_in_a_thread_and_remembered(reads: Reads) -> None:
    loop_thread = threading.get_ident()
    total = SLOW_N * (SLOW_N + 1) // 2
    with anyio.fail_after(60):
        assert await quick_read(reads.db, reads.big) == total
        assert reads.threads[0] == loop_thread and reads.threads[1] != loop_thread  # tried here, redone elsewhere
        assert await quick_read(reads.db, reads.big) == total  # once may be a cold start: tried here again
        assert reads.threads[2] == loop_thread and reads.threads[3] != loop_thread
        assert await quick_read(reads.db, reads.big, 10) == 55  # twice: that kind goes straight to a thread
        assert reads.threads[4] != loop_thread and len(reads.threads) == 5
        assert await quick_read(reads.db, reads.small) == 42  # another kind still runs here
        assert reads.threads[5] == loop_thread
        # the interruption did not outlive the attempt: a long read in this thread is left alone
        assert reads.big() == total


async def test_a_failing_read_fails_as_it_would_in_a_thread(reads: Reads) -> None:
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await quick_read(reads.db, reads.broken)
    assert reads.db.read_here(reads.small) == 42  # not remembered as slow, the lock released


async def test_store_calls_occupy_at_most_store_threads_worker_threads(reads: Reads) -> None:
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


async def test_a_cancelled_store_call_waiting_for_a_thread_never_runs(reads: Reads) -> None:
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
