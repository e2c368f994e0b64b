"""File bytes on disk: streamed in, hashed on the way, fsynced and renamed before anyone sees them.

A blob becomes visible only when its row commits (see `store`); until then it lives in
``incoming/`` (cleared at start-up) or under a random name no row points to (swept at start-up).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import anyio
import anyio.to_thread

BLOCK = 1024 * 1024
HEAD_BYTES = 8192


class TooLarge(Exception):
    """The body went past the allowed size."""


@dataclass
class Received:
    """A fully received, fsynced file in ``incoming/``, not yet visible."""

    path: Path
    size: int
    md5: str
    head: bytes


def _write_block(fh: IO[bytes], digest: hashlib._Hash, block: bytes) -> None:
    fh.write(block)
    digest.update(block)


def _fsync_close(fh: IO[bytes]) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()


class BlobStore:
    def __init__(self, blobs: Path, incoming: Path) -> None:
        self.blobs = blobs
        self.incoming = incoming

    def path_of(self, key: str) -> Path:
        # keys are minted here (hex), never taken from a request
        return self.blobs / key[:2] / key

    def clear_incoming(self) -> None:
        for leftover in self.incoming.iterdir():
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)

    def all_keys(self) -> set[str]:
        """Names of every file under ``blobs/``."""
        return {p.name for p in self.blobs.glob("*/*") if p.is_file()}

    def sweep(self, owned: set[str]) -> list[str]:
        """Remove every file under ``blobs/`` that is not the blob of a row; returns what went."""
        removed = []
        for path in self.blobs.glob("*/*"):
            if path.name in owned and path == self.path_of(path.name):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(str(path.relative_to(self.blobs)))
        return removed

    async def receive(self, chunks: AsyncIterator[bytes], max_bytes: int) -> Received:
        """Stream ``chunks`` to a temporary file; writing and hashing run in a worker thread."""
        path = self.incoming / secrets.token_hex(16)
        fh = open(path, "xb")  # noqa: SIM115 - closed by _fsync_close or on error
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        head = b""
        send, recv = anyio.create_memory_object_stream[bytes](4)

        async def writer() -> None:
            async with recv:
                async for block in recv:
                    await anyio.to_thread.run_sync(_write_block, fh, digest, block)

        try:
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(writer)
                    async with send:
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
                                await send.send(b"".join(pending))
                                pending, pending_size = [], 0
                        if pending:
                            await send.send(b"".join(pending))
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

    async def receive_file(self, source: Path) -> Received:
        """Hash and fsync a finished file in place (a completed resumable upload); `commit` moves it."""

        def run() -> Received:
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

    def commit(self, received: Received) -> str:
        """Move a received file under its permanent key; durable once this returns."""
        key = secrets.token_hex(16)
        target = self.path_of(key)
        target.parent.mkdir(mode=0o700, exist_ok=True)
        os.replace(received.path, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return key

    def discard(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)
