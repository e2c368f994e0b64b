"""A catalogue that lost track of stored files: no start-up ever deletes their bytes, and it says so on stderr.

The library is set up in process, then its catalogue (``library.sqlite3``) is deleted, emptied or replaced by an
older copy, and ``media-mcp library`` starts on the directory as a person would run it.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from media_mcp.settings import LibrarySettings
from tests.conftest import Api

pytestmark = pytest.mark.anyio

START_TIMEOUT = 60.0
"""Bound on the command's start (imports, opening the directory) and on its stop."""
SERVING = "media-mcp library: serving"
FIRST = b"the first file, listed by every copy of the catalogue\n"
LATER = [b"uploaded after the backup was taken\n", b"also after the backup\n"]


async def upload(settings: LibrarySettings, contents: list[bytes]) -> list[str]:
    """Store ``contents`` as text files through the library's REST API; their file ids."""
    with Library.open(settings) as lib:
        transport = httpx.ASGITransport(app=create_app(lib))
        async with httpx.AsyncClient(transport=transport, base_url="http://library.test") as http:
            api = Api(http, lib, "asgi")
            return [(await api.upload(f"{n}.txt", data, "text/plain"))["id"] for n, data in enumerate(contents)]


def stored_bytes(root: Path) -> list[bytes]:
    """The contents of every file under ``blobs/`` and ``quarantine/``."""
    return [p.read_bytes() for d in ("blobs", "quarantine") for p in (root / d).rglob("*") if p.is_file()]


def start_and_stop(data_dir: Path, home: Path) -> tuple[int, str]:
    """Run ``media-mcp library`` on ``data_dir`` until it serves, then SIGTERM it; its exit status and stderr."""
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "media_mcp", "library", "--data-dir", str(data_dir), "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    said: list[str] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not any(SERVING in line for line in said):
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, "".join(said)
            said.append(line)
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=START_TIMEOUT)
        reader.join(timeout=START_TIMEOUT)
        while (line := lines.get_nowait()) is not None:
            said.append(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()
    return status, "".join(said)


def lose_catalogue(database: Path, how: str, older: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    if how == "deleted":
        database.unlink()
    elif how == "emptied":
        database.write_bytes(b"")
    else:
        shutil.copyfile(older, database)


@pytest.mark.parametrize("how", ["deleted", "emptied", "older copy"])
async def test_no_start_deletes_the_bytes_of_files_the_catalogue_lost(tmp_path: Path, how: str) -> None:
    data_dir = tmp_path / "data"
    settings = LibrarySettings(data_dir=data_dir)
    first = await upload(settings, [FIRST])
    backup = tmp_path / "library.sqlite3.bak"
    shutil.copyfile(data_dir / "library.sqlite3", backup)  # closed, so the WAL is checkpointed into it
    await upload(settings, LATER)
    before = sorted(stored_bytes(data_dir))
    assert before == sorted([FIRST, *LATER])

    lose_catalogue(data_dir / "library.sqlite3", how, backup)
    home = tmp_path / "home"
    home.mkdir()
    status, stderr = start_and_stop(data_dir, home)

    assert status == 0, stderr
    assert sorted(stored_bytes(data_dir)) == before  # every byte is still on disk
    quarantine = data_dir / "quarantine"
    aside = sorted(p.read_bytes() for p in quarantine.rglob("*") if p.is_file())
    warnings = [line for line in stderr.splitlines() if line.startswith("WARNING")]
    if how == "older copy":
        assert aside == sorted(LATER)
        assert any("2 stored file(s) are not listed" in w and str(quarantine) in w for w in warnings), stderr
        with Library.open(settings) as lib:  # what the older catalogue lists is still served from its blob
            transport = httpx.ASGITransport(app=create_app(lib))
            async with httpx.AsyncClient(transport=transport, base_url="http://library.test") as http:
                got = await Api(http, lib, "asgi").ok("GET", "/files/get-file-by-id", params={"fileId": first[0]})
                assert (await http.get(got["file"]["url"])).content == FIRST
    else:
        assert aside == before
        assert any("3 stored file(s) are not listed" in w and "lists no files at all" in w for w in warnings), stderr

    # a second start finds nothing more to set aside, and says nothing about it
    status, stderr = start_and_stop(data_dir, home)
    assert status == 0 and "not listed" not in stderr, stderr
    assert sorted(stored_bytes(data_dir)) == before
