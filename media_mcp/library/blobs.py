"""File bytes on disk: streamed in, hashed on the way, fsynced and renamed before anyone sees them.

A blob becomes visible only when its row commits (see `store`); until then it lives in
``incoming/`` (cleared at start-up) or under a random name no row points to. Bytes under ``blobs/`` are never
deleted because no row lists them: a crash between a blob's rename and its row's commit looks exactly like a
catalogue that was lost, emptied or restored from an older copy, so such blobs are set aside (`set_aside`), never
removed; only a row's own blob goes (`discard`), once the row has gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from media_mcp.library.datadir import IDENT, OWNER_DIR, OWNER_FILE, fsync_dir

BLOCK = 1024 * 1024
"""Bytes handed to a worker thread at a time. An upload passes the network's chunks on as a list, not joined: a
joined block would be a fresh 1 MiB allocation and copy each time."""
HEAD_BYTES = 8192
FLUSH_EVERY = 8 * BLOCK
"""An upload is written back to disk in the background every this many bytes, so its final fsync is short."""
_datasync = getattr(os, "fdatasync", os.fsync)


@dataclass
class SetAside:
    """What `BlobStore.set_aside` did: the paths it moved to, and what it could not move (path, reason)."""

    into: Path
    moved: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)


class TooLarge(Exception):
    """The body went past the allowed size."""


@dataclass
class Received:
    """A fully received, fsynced file in ``incoming/``, not yet visible."""

    path: Path
    size: int
    md5: str
    head: bytes


@dataclass
class RunningHash:
    """The hash of a resumable upload's bytes so far, kept in memory between its ``PATCH`` requests.

    It lets the final ``PUT`` skip reading the whole file again. Only the process that received every byte has
    one; after a restart the file is hashed from disk.
    """

    offset: int = 0
    head: bytes = b""
    digest: Any = field(default_factory=lambda: hashlib.md5(usedforsecurity=False))

    def add(self, chunk: bytes) -> None:
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self.digest.update(chunk)
        self.offset += len(chunk)


Chunks = tuple[bytes, ...]
"""About `BLOCK` bytes of an upload, as the chunks they arrived in."""


async def _write(fh: IO[bytes], blocks: MemoryObjectReceiveStream[Chunks], flush: MemoryObjectSendStream[None]) -> None:
    """Write ``blocks`` in order; every `FLUSH_EVERY` bytes, ask `_writeback` to push them to disk."""
    unflushed = 0
    async with blocks, flush:
        async for block in blocks:
            await anyio.to_thread.run_sync(fh.writelines, block)
            unflushed += sum(map(len, block))
            if unflushed >= FLUSH_EVERY:
                unflushed = 0
                with contextlib.suppress(anyio.WouldBlock):  # one is pending already
                    flush.send_nowait(None)


async def _writeback(fh: IO[bytes], requests: MemoryObjectReceiveStream[None]) -> None:
    async with requests:
        async for _ in requests:
            await anyio.to_thread.run_sync(_datasync, fh.fileno())


def _update(digest: hashlib._Hash, block: Chunks) -> None:
    for chunk in block:
        digest.update(chunk)


async def _hash(digest: hashlib._Hash, blocks: MemoryObjectReceiveStream[Chunks]) -> None:
    async with blocks:
        async for block in blocks:
            await anyio.to_thread.run_sync(_update, digest, block)


def create_private(path: Path) -> IO[bytes]:
    """A new file, owner-only from its first moment (not made so afterwards), open for writing."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_FILE), "wb")


def _fsync_close(fh: IO[bytes]) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()


class BlobStore:
    def __init__(self, blobs: Path, incoming: Path) -> None:
        self.blobs = blobs
        self.incoming = incoming
        self.owner = ""
        """The ident of this process's membership (`datadir.Membership`): it names the uploads it receives, so
        another process can tell those of a process that is gone (`clear_incoming_of`)."""

    def path_of(self, key: str) -> Path:
        # keys are minted here (hex), never taken from a request
        return self.blobs / key[:2] / key

    def clear_incoming(self) -> None:
        for leftover in self.incoming.iterdir():
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)

    def clear_incoming_of(self, alive: Callable[[str], bool]) -> int:
        """Remove the partial uploads of processes that are gone (``alive`` says no); how many went."""
        gone = 0
        for leftover in self.incoming.iterdir():
            owner, dash, _ = leftover.name.partition("-")
            if dash and IDENT.fullmatch(owner) and leftover.is_file() and not alive(owner):
                leftover.unlink(missing_ok=True)
                gone += 1
        return gone

    def all_keys(self) -> set[str]:
        """Names of every file under ``blobs/``."""
        return {p.name for p in self.blobs.glob("*/*") if p.is_file()}

    def set_aside(self, owned: set[str], into: Path) -> SetAside:
        """Move every entry under ``blobs/`` that is not the blob of a row to ``into`` (same relative path).

        Nothing is deleted: a rename within the data directory keeps the bytes, and an entry that cannot be moved
        stays where it is (and is counted in `SetAside.kept`). ``into`` is created only when something moves.
        """
        result = SetAside(into)
        for path in sorted(self.blobs.glob("*/*")):
            if path.name in owned and path == self.path_of(path.name):
                continue
            target = into / path.relative_to(self.blobs)
            try:
                target.parent.mkdir(mode=OWNER_DIR, parents=True, exist_ok=True)
                if target.exists() or target.is_symlink():  # never over anything already set aside
                    raise FileExistsError(str(target))
                os.rename(path, target)
            except OSError as exc:
                result.kept.append((str(path), str(exc)))
                continue
            result.moved.append(str(target))
        if result.moved:
            fsync_dir(into)
        return result

    async def receive(self, chunks: AsyncIterator[bytes], max_bytes: int) -> Received:
        """Stream ``chunks`` to a temporary file.

        Writing, hashing and writeback (fdatasync every `FLUSH_EVERY` bytes) each run in their own worker
        thread, overlapping one another and the network: md5 alone is slower than the disk.
        """
        name = secrets.token_hex(16)
        path = self.incoming / (f"{self.owner}-{name}" if self.owner else name)
        fh = create_private(path)  # closed by _fsync_close or on error
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        head = b""
        send, recv = anyio.create_memory_object_stream[Chunks](4)
        hash_send, hash_recv = anyio.create_memory_object_stream[Chunks](4)
        flush_send, flush_recv = anyio.create_memory_object_stream[None](1)

        try:
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_write, fh, recv, flush_send)
                    tg.start_soon(_writeback, fh, flush_recv)
                    tg.start_soon(_hash, digest, hash_recv)
                    async with send, hash_send:
                        pending: list[bytes] = []
                        pending_size = 0
                        async for chunk in chunks:
                            size += len(chunk)
                            if size > max_bytes:
                                raise TooLarge(f"more than {max_bytes} bytes")
                            if len(head) < HEAD_BYTES:
                                head += chunk[: HEAD_BYTES - len(head)]
                            pending.append(chunk)
                            pending_size += len(chunk)
                            if pending_size >= BLOCK:
                                block = tuple(pending)
                                await send.send(block)
                                await hash_send.send(block)
                                pending, pending_size = [], 0
                        if pending:
                            block = tuple(pending)
                            await send.send(block)
                            await hash_send.send(block)
            except BaseExceptionGroup as group:
                # the task group wraps what it saw (TooLarge, ClientDisconnect, ...): raise that instead
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
            await anyio.to_thread.run_sync(_fsync_close, fh)
        except BaseException:
            fh.close()
            path.unlink(missing_ok=True)
            raise
        return Received(path=path, size=size, md5=digest.hexdigest(), head=head)

    async def receive_file(self, source: Path, known: RunningHash | None = None) -> Received:
        """Hash and fsync a finished file in place (a completed resumable upload); `commit` moves it.

        ``known``: the hash taken while the bytes arrived; used when it covers exactly the file on disk.
        """

        def run() -> Received:
            if known is not None:
                with open(source, "rb") as fh:
                    os.fsync(fh.fileno())
                    if os.fstat(fh.fileno()).st_size == known.offset:
                        return Received(path=source, size=known.offset, md5=known.digest.hexdigest(), head=known.head)
            digest = hashlib.md5(usedforsecurity=False)
            size = 0
            head = b""
            with open(source, "rb") as fh:
                while block := fh.read(BLOCK):
                    if not head:
                        head = block[:HEAD_BYTES]
                    digest.update(block)
                    size += len(block)
                os.fsync(fh.fileno())
            return Received(path=source, size=size, md5=digest.hexdigest(), head=head)

        return await anyio.to_thread.run_sync(run)

    def _shard(self, key: str) -> Path:
        """The blob's path, creating its ``blobs/xx/`` directory durably the first time."""
        target = self.path_of(key)
        try:
            target.parent.mkdir(mode=OWNER_DIR)
        except FileExistsError:
            pass
        else:
            fsync_dir(self.blobs)
        return target

    def commit(self, received: Received) -> str:
        """Move a received file under its permanent key; durable once this returns."""
        key = secrets.token_hex(16)
        target = self._shard(key)
        os.replace(received.path, target)
        fsync_dir(target.parent)
        return key

    def link(self, received: Received) -> str:
        """Give a received file a permanent key too, leaving it where it is; durable once this returns.

        The caller removes ``received.path`` only after the file's row has committed, so a crash in
        between loses nothing: the unlisted blob is set aside at start-up and the source is still there.
        """
        key = secrets.token_hex(16)
        target = self._shard(key)
        try:
            os.link(received.path, target)
        except OSError:  # no hard links on this file system: copy instead
            with open(received.path, "rb") as source, create_private(target) as copy:
                shutil.copyfileobj(source, copy, BLOCK)
                copy.flush()
                os.fsync(copy.fileno())
        fsync_dir(target.parent)
        return key

    def discard(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)
