"""Everything the library keeps in its data directory is its owner's only (issue 11, class 7).

Files are 0600 and directories 0700 from the moment they exist — database with its -wal and -shm, keys, lock,
blobs, uploads in flight, resumable parts, temporary zips — under the usual umask 022, and what an older version
left readable is made owner-only when the library starts. Files the library does not own are not touched.
"""

from __future__ import annotations

import base64
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from media_mcp.library import downloads
from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from media_mcp.settings import LibrarySettings
from tests.conftest import Api, FakeClock, PNG_16x8

pytestmark = pytest.mark.anyio

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The common umask (022), under which a plain ``open`` makes files readable by everyone."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """Every file and directory under ``root`` (itself included), by relative path, with its permission bits."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def loose(root: Path, skip: Callable[[str], bool] = lambda _: False) -> dict[str, str]:
    """What under ``root`` is not owner-only (0600 files, 0700 directories)."""
    out = {}
    for name, mode in modes(root).items():
        want = 0o700 if (root / name).is_dir() else 0o600
        if mode != want and not skip(name):
            out[name] = oct(mode)
    return out


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def fill(api: Api) -> None:
    """Leave one of everything the library keeps: a PUT file, a tus file, an unfinished tus part, a zip built."""
    await api.upload("cat.png", PNG_16x8, "image/png")
    for length, finish in ((5, True), (10, False)):
        minted = await api.ok("POST", "/files/generate-resumable-upload-url", json={"mimeType": "text/plain"})
        meta = f"filename {b64('notes.txt')},token {b64(minted['uploadToken'])}"
        created = await api.http.post(
            minted["uploadUrl"], headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": meta}
        )
        assert created.status_code == 201, created.text
        sent = await api.http.patch(
            created.headers["Location"],
            content=b"hello",
            headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        )
        assert sent.status_code == 204, sent.text
        if finish:
            done = await api.http.put(f"{minted['uploadUrl']}/{minted['uploadToken']}", content=b"{}")
            assert done.status_code == 200, done.text


async def test_everything_the_library_creates_is_owner_only(
    api: Api, library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []
    original = downloads._build_zip

    def build_and_look(target: Path, entries: list[tuple[str, Path]]) -> None:
        original(target, entries)
        built.append(stat.S_IMODE(target.stat().st_mode))

    monkeypatch.setattr(downloads, "_build_zip", build_and_look)
    await fill(api)
    files = await api.ok("POST", "/files/search", json={"paging": {"limit": 100}})
    zipped = await api.ok("POST", "/files/generate-download-url", json={"fileIds": [f["id"] for f in files["files"]]})
    assert (await api.http.get(zipped["downloadUrl"])).status_code == 200
    assert built == [0o600]  # the temporary zip in incoming/, while it existed

    root = library.data.root
    names = set(modes(root))
    for expected in ("library.sqlite3", "library.sqlite3-wal", "library.sqlite3-shm", "api_key", "signing_key",
                     "proof_key", "members.lock", "blobs", "incoming", "resumable"):  # fmt: skip
        assert expected in names, sorted(names)
    assert len(library.blobs.all_keys()) == 4  # the two files, and the image's preview and thumbnail
    assert len(list(library.data.resumable.iterdir())) == 1  # the unfinished transfer's part
    assert loose(root) == {}


async def test_a_copied_blob_is_owner_only_too(api: Api, library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where there are no hard links, the blob is a copy: created owner-only, not made so afterwards."""

    def no_links(*args: Any, **kwargs: Any) -> None:
        raise OSError("no hard links here")

    monkeypatch.setattr(os, "link", no_links)
    uploaded = await api.upload("cat.png", PNG_16x8, "image/png")
    row = library.catalog.get_file(uploaded["id"])
    assert row is not None and row.blob is not None
    assert stat.S_IMODE(library.blobs.path_of(row.blob).stat().st_mode) == 0o600
    assert loose(library.data.root) == {}


async def test_what_an_older_version_left_readable_is_made_owner_only_at_start_up(
    data_dir: Path, clock: FakeClock
) -> None:
    settings = LibrarySettings(data_dir=data_dir)
    with Library.open(settings, clock=clock) as lib:
        transport = httpx.ASGITransport(app=create_app(lib))
        async with httpx.AsyncClient(transport=transport, base_url="http://library.test") as http:
            await fill(Api(http, lib, "asgi"))
    # as an older version left them: everything readable by all, leftovers of its own, and no mark of this one
    (data_dir / "blobs.owner-only").unlink()
    (data_dir / "incoming" / "0123abcd").write_bytes(b"half an upload")
    (data_dir / ".api_key.0011.tmp").write_bytes(b"half a key")
    (data_dir / "library.sqlite3-journal").write_bytes(b"")
    for path in [data_dir, *data_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    # what is not the library's stays as it is
    (data_dir / "my notes.txt").write_bytes(b"mine")
    (data_dir / "my notes.txt").chmod(0o644)
    (data_dir / "photos").mkdir(mode=0o755)
    (data_dir / "photos").chmod(0o755)
    (data_dir / "photos" / "a.png").write_bytes(PNG_16x8)
    (data_dir / "photos" / "a.png").chmod(0o644)
    outside = data_dir.parent / "elsewhere.txt"
    outside.write_bytes(b"not in the data directory")
    outside.chmod(0o644)
    (data_dir / "blobs" / "link-out").symlink_to(outside)

    assert loose(data_dir)  # the starting point is loose indeed
    with Library.open(settings, clock=clock):
        theirs = ("my notes.txt", "photos", "photos/a.png", "blobs/link-out")
        assert loose(data_dir, skip=lambda name: name in theirs) == {}
        assert {name: oct(modes(data_dir)[name]) for name in theirs[:3]} == {
            "my notes.txt": "0o644",
            "photos": "0o755",
            "photos/a.png": "0o644",
        }
        assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # a link is never followed


async def test_a_blob_an_older_version_adds_later_is_made_owner_only_at_the_next_start(
    data_dir: Path, clock: FakeClock
) -> None:
    """Later starts look only through the blob shards changed since the last: one a blob was added to is one."""
    settings = LibrarySettings(data_dir=data_dir)
    with Library.open(settings, clock=clock) as lib:
        transport = httpx.ASGITransport(app=create_app(lib))
        async with httpx.AsyncClient(transport=transport, base_url="http://library.test") as http:
            uploaded = await Api(http, lib, "asgi").upload("cat.png", PNG_16x8, "image/png")
        row = lib.catalog.get_file(uploaded["id"])
        assert row is not None and row.blob is not None
        blob = lib.blobs.path_of(row.blob)
    an_hour_ago = time.time() - 3600
    for path in (data_dir / "blobs").iterdir():
        os.utime(path, (an_hour_ago, an_hour_ago))
    # as an older version sharing the directory would store it: readable by all, its shard changed now
    blob.chmod(0o644)
    os.utime(blob.parent)
    with Library.open(settings, clock=clock):
        assert stat.S_IMODE(blob.stat().st_mode) == 0o600
        assert loose(data_dir) == {}
