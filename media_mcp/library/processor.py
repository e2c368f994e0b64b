"""Processing off the request path: files decoded in worker processes, a few at a time, each bounded and killable.

`ProcessingLimits.workers` worker processes (`worker.serve`, started from the multiprocessing forkserver with the
decoders loaded) each process one file at a time, under resource limits (address space, CPU time, size of what they
write, no core dumps) and a wall-clock timeout past which the worker is killed. A decompression bomb, a decoder caught
in a loop or a crash costs that one file (FAILED, with the reason) and its worker, which the next file replaces; never
the library or another file. Each worker is driven by one of the processor's threads, which then records the outcome:
the event loop that serves requests at most waits for it (`finished`).

Processing is idempotent: a file's assets are replaced as a whole in one transaction, so processing it again (after a
stop cut it short) leaves the same record, never a duplicate. Files still PENDING are resumed when the library opens
(`Library._recover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import multiprocessing
import re
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.context import ForkServerContext, SpawnContext
from pathlib import Path
from typing import Any

import anyio

from media_mcp.library import assets, worker
from media_mcp.library.blobs import BlobStore, Received
from media_mcp.library.catalog import Catalog
from media_mcp.library.outcomes import AssetRow, Outcomes
from media_mcp.library.rows import FileRow
from media_mcp.library.worker import ProcessingLimits

__all__ = ["ProcessingLimits", "Processor", "finished"]

log = logging.getLogger("media_mcp.library.processing")

PRELOAD = ["__main__", "media_mcp.library.processing"]
"""What the forkserver imports once, so every worker starts with the decoders (Pillow, PyAV, pdfium) loaded."""
REPLY_MAX = 1 << 20
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9.]{0,31}")


def _context() -> ForkServerContext | SpawnContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context: ForkServerContext = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)  # only takes effect before the forkserver starts: the same always
        return context
    return multiprocessing.get_context("spawn")


def _death(exitcode: int | None, limits: ProcessingLimits) -> str:
    """Why a worker ended without an answer, from how it ended."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return {
            "SIGXCPU": f"processing used more than {math.ceil(limits.timeout_seconds)} s of CPU time",
            "SIGXFSZ": "processing wrote more than it may",
            "SIGKILL": "the worker processing the file was killed (out of memory?)",
        }.get(name, f"the decoder crashed ({name})")
    return f"the worker processing the file stopped unexpectedly (exit status {exitcode})"


async def finished(job: Future[Any], within: float | None = None) -> bool:
    """Wait for a processing job from an event loop, at most ``within`` seconds; never cancels the job."""
    if not job.done():
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def wake(_: Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile: nobody waits any more
                loop.call_soon_threadsafe(done.set)

        job.add_done_callback(wake)
        with anyio.move_on_after(within):
            await done.wait()
    return job.done()


class _Gone(Exception):
    """The worker had ended before it was asked (it was idle)."""


class _Worker:
    """One worker process and the pipe to it."""

    def __init__(self, limits: ProcessingLimits) -> None:
        context = _context()
        self.pipe, theirs = context.Pipe()
        self.process = context.Process(
            target=worker.serve, args=(theirs, limits), name="media-mcp-processing", daemon=True
        )
        try:
            self.process.start()
        except BaseException:
            self.pipe.close()
            raise
        finally:
            theirs.close()
        self.done = 0

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The worker's answer to ``request``; None if it died meanwhile.

        Raises `TimeoutError` past ``timeout``, `_Gone` if it had ended before.
        """
        if not self.process.is_alive():
            raise _Gone
        try:
            self.pipe.send_bytes(json.dumps(request).encode())
        except OSError as exc:
            raise _Gone from exc
        if not self.pipe.poll(timeout):
            raise TimeoutError
        try:
            answer = json.loads(self.pipe.recv_bytes(REPLY_MAX))
        except (EOFError, OSError):
            return None
        if not isinstance(answer, dict) or not ("result" in answer or "error" in answer):
            raise ValueError("a worker's answer has neither a result nor an error")
        self.done += 1
        return answer

    def stop(self) -> int | None:
        """Kill the worker (if it still runs); how it ended."""
        self.process.kill()
        self.process.join()
        self.pipe.close()
        return self.process.exitcode


SPARE_WORKERS = 4
"""Idle workers a closed processor leaves to the next one opened in this process, rather than killing them.

A worker takes about half a second to start (a fork of the forkserver that then imports the decoders), and holds no
state of a library between files: libraries opened one after another in one process (a backend restarted, every
test) take over the last one's workers, with the same limits."""
_spare: dict[ProcessingLimits, list[_Worker]] = {}
_spare_lock = threading.Lock()


def _spare_worker(limits: ProcessingLimits) -> _Worker | None:
    with _spare_lock:
        waiting = _spare.get(limits, [])
        while waiting:
            candidate = waiting.pop()
            if candidate.process.is_alive():
                return candidate
            candidate.stop()
    return None


def _leave_spare(limits: ProcessingLimits, idle: _Worker) -> bool:
    with _spare_lock:
        waiting = _spare.setdefault(limits, [])
        if idle.process.is_alive() and idle.done < limits.jobs_per_worker and len(waiting) < SPARE_WORKERS:
            waiting.append(idle)
            return True
    return False


class Processor:
    """Runs processing jobs, one per file at a time, at most `ProcessingLimits.workers` at once."""

    def __init__(
        self,
        catalog: Catalog,
        outcomes: Outcomes,
        blobs: BlobStore,
        incoming: Path,
        clock: Callable[[], float],
        limits: ProcessingLimits,
    ) -> None:
        self.catalog = catalog
        self.outcomes = outcomes
        self.blobs = blobs
        self.incoming = incoming
        self.clock = clock
        self.limits = limits
        self._lock = threading.Lock()
        self._jobs: dict[str, Future[None]] = {}
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._closing = False

    def submit(self, file_id: str) -> Future[None]:
        """Process a file (if it still waits for it); the job already under way for it, if there is one."""
        with self._lock:
            if (job := self._jobs.get(file_id)) is not None:
                return job
            if self._closing:  # left PENDING: the next start resumes it
                job = Future()
                job.set_result(None)
                return job
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.limits.workers, thread_name_prefix="media-mcp-processing")
            job = self._pool.submit(self._run, file_id)
            self._jobs[file_id] = job
        job.add_done_callback(lambda done: self._forget(file_id, done))
        return job

    def _forget(self, file_id: str, job: Future[None]) -> None:
        with self._lock:
            if self._jobs.get(file_id) is job:
                del self._jobs[file_id]

    def resume(self, changed_before: float | None = None) -> int:
        """Process every file still PENDING with its bytes stored (``changed_before``: only those older)."""
        waiting = self.outcomes.pending(changed_before)
        for file_id in waiting:
            self.submit(file_id)
        return len(waiting)

    def jobs(self) -> list[Future[None]]:
        """The jobs submitted and not yet finished."""
        with self._lock:
            return list(self._jobs.values())

    def close(self) -> None:
        """Stop: kill the workers, drop the queue; what was not recorded stays PENDING for the next start."""
        with self._lock:
            self._closing = True
            pool, self._pool = self._pool, None
            idle, self._idle = self._idle, []
            running = [w for w in self._workers if w not in idle]
            self._workers.clear()
        for busy in running:
            busy.process.kill()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for busy in running:
            busy.stop()
        for waiting in idle:
            if not _leave_spare(self.limits, waiting):
                waiting.stop()

    # --- one job, on a processor thread --------------------------------------------------------

    def _take(self) -> _Worker | None:
        """An idle worker, or a new one; None if the processor is closing."""
        with self._lock:
            if self._closing:
                return None
            if self._idle:
                return self._idle.pop()
        started = _spare_worker(self.limits) or _Worker(self.limits)
        with self._lock:
            self._workers.add(started)
            if not self._closing:
                return started
        self._retire(started)
        return None

    def _retire(self, done: _Worker) -> int | None:
        with self._lock:
            self._workers.discard(done)
        return done.stop()

    def _run(self, file_id: str) -> None:
        row = self.catalog.get_file(file_id)
        if row is None or row.status != "PENDING" or row.blob is None:
            return
        out = Path(tempfile.mkdtemp(prefix="processing-", dir=self.incoming))  # owner-only, cleared at start-up
        try:
            answer = self._decode(row, out)
            if answer is None or self._closing:
                return
            if "error" in answer:
                log.info("processing %s failed: %s", file_id, answer["error"])
                self._fail(file_id, str(answer["error"])[:300])
            else:
                self._record(row, out, answer["result"])
        except Exception:
            log.exception("processing %s failed", file_id)
            if not self._closing:
                self._fail(file_id, "processing failed unexpectedly; the library's log says more")
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def _decode(self, row: FileRow, out: Path) -> dict[str, Any] | None:
        """A worker's answer for the file, or why there is none; None if the processor is closing."""
        assert row.blob is not None
        request = {
            "source": str(self.blobs.path_of(row.blob)),
            "media_type": row.media_type,
            "mime": row.mime_type,
            "out": str(out),
            "size": row.size,
        }
        while (used := self._take()) is not None:
            try:
                answer = used.ask(request, self.limits.timeout_seconds)
            except _Gone:
                exitcode = self._retire(used)
                if used.done:  # ended while idle, after work (killed from outside): the next one takes the file
                    continue
                return None if self._closing else {"error": _death(exitcode, self.limits)}
            except TimeoutError:
                self._retire(used)
                took = f"processing took longer than {self.limits.timeout_seconds:g} s"
                return None if self._closing else {"error": took}
            except BaseException:
                self._retire(used)
                raise
            if answer is None:
                exitcode = self._retire(used)
                return None if self._closing else {"error": _death(exitcode, self.limits)}
            if answer.get("retire") or used.done >= self.limits.jobs_per_worker:
                self._retire(used)
            else:
                with self._lock:
                    closed = self._closing
                    if not closed:
                        self._idle.append(used)
                if closed and not _leave_spare(self.limits, used):
                    self._retire(used)
            return answer
        return None

    def _record(self, row: FileRow, out: Path, result: dict[str, Any]) -> None:
        """Store the derived files as blobs and record them with what was found, replacing any earlier ones."""
        found: list[AssetRow] = []
        try:
            for item in result["derived"]:
                key, name, mime = str(item["key"]), str(item["name"]), str(item["mime"])
                if not (assets.KEY_RE.fullmatch(key) and _NAME_RE.fullmatch(name) and mime in assets.MIME_TYPES):
                    raise ValueError(f"a worker named an asset {key!r} / {name!r} of type {mime!r}")
                path = out / name
                info = path.lstat()
                if not stat.S_ISREG(info.st_mode):
                    raise ValueError(f"a worker's asset {name!r} is not a file")
                blob = self.blobs.commit(Received(path=path, size=info.st_size, md5="", head=b""))
                found.append(AssetRow(key, blob, mime, info.st_size, int(item["width"]), int(item["height"])))
            processed = assets.Processed(
                width=int(result["width"]),
                height=int(result["height"]),
                duration_ms=None if result["duration_ms"] is None else int(result["duration_ms"]),
                bitrate=None if result["bitrate"] is None else int(result["bitrate"]),
                colors=tuple((int(r), int(g), int(b)) for r, g, b in result["colors"]),
                assets=tuple(assets.Asset(a.key, a.mime, a.size, a.width, a.height) for a in found),
            )
            width, height = (processed.width, processed.height) if processed.width else (row.width, row.height)
            replaced = self.outcomes.complete(row.id, processed.to_json(), width, height, found, self.clock())
        except BaseException:
            for asset in found:
                self.blobs.discard(asset.blob)
            raise
        for blob in replaced if replaced is not None else [a.blob for a in found]:
            self.blobs.discard(blob)

    def _fail(self, file_id: str, reason: str) -> None:
        for blob in self.outcomes.fail(file_id, reason, self.clock()):
            self.blobs.discard(blob)
