"""The library across restarts: what it keeps, what a crash may leave behind and how start-up cleans it."""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from media_mcp.library import blobs as blobs_module
from media_mcp.library.app import create_app
from media_mcp.library.datadir import fsync_dir
from media_mcp.library.rows import FileRow
from media_mcp.library.service import Library
from media_mcp.library.tokens import AUD_UPLOAD
from media_mcp.settings import LibrarySettings
from media_mcp.wix import models as m
from tests.conftest import Api, FakeClock, PNG_16x8

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def running(settings: LibrarySettings, clock: FakeClock) -> AsyncIterator[Api]:
    """Open the library on its data dir and serve a fresh app in process; close both on exit."""
    with Library.open(settings, clock=clock) as lib:
        transport = httpx.ASGITransport(app=create_app(lib))
        async with httpx.AsyncClient(transport=transport, base_url="http://library.test") as http:
            yield Api(http, lib, "asgi")


async def state_of(api: Api, file_ids: list[str], folder_ids: list[str]) -> dict[str, Any]:
    """Everything a client can see about these files and folders, plus the listings they appear in."""
    files = await api.ok("POST", "/files/get-files", json={"fileIds": file_ids})
    folders = [(await api.ok("GET", f"/folders/{f}"))["folder"] for f in folder_ids]
    return {
        "files": files["files"],
        "folders": folders,
        "search": (await api.ok("POST", "/files/search", json={}))["files"],
        "root_folders": (await api.ok("GET", "/folders"))["folders"],
        "all_folders": (await api.ok("POST", "/folders/search", json={}))["folders"],
        "trashed_files": (await api.ok("GET", "/trash-bin/files"))["files"],
        "trashed_folders": (await api.ok("GET", "/trash-bin/folders"))["folders"],
    }


async def test_everything_survives_a_restart(settings: LibrarySettings, clock: FakeClock) -> None:
    async with running(settings, clock) as api:
        public = await api.upload("public.png", PNG_16x8, "image/png")
        private = await api.upload("secret.txt", b"top secret\n", "text/plain", private=True)
        outer = await api.folder("outer")
        inner = await api.folder("inner", outer)
        deep = await api.upload("deep.txt", b"deep down\n", "text/plain", parentFolderId=inner)
        gone = await api.upload("gone.txt", b"to the trash\n", "text/plain")
        doomed = await api.folder("doomed")
        taken = await api.upload("taken.txt", b"went along\n", "text/plain", parentFolderId=doomed)
        await api.ok("POST", "/bulk/files/delete", json={"fileIds": [gone["id"]]})
        await api.ok("POST", "/bulk/folders/delete", json={"folderIds": [doomed]})
        link = await api.ok(
            "POST", "/files/generate-file-download-url", json={"fileId": private["id"], "expirationInMinutes": 60}
        )
        link_url = link["downloadUrls"][0]["url"]
        zipped = await api.ok("POST", "/files/generate-download-url", json={"fileIds": [public["id"], deep["id"]]})
        file_ids = [public["id"], private["id"], deep["id"], gone["id"], taken["id"]]
        folder_ids = [outer, inner, doomed]
        before = await state_of(api, file_ids, folder_ids)
        key, site = api.library.api_key, api.library.site_id
        assert (await api.http.get(link_url)).content == b"top secret\n"

    assert [f["displayName"] for f in before["trashed_files"]] == ["gone.txt"]
    assert [f["id"] for f in before["trashed_folders"]] == [doomed]

    async with running(settings, clock) as api:
        assert api.library.api_key == key
        assert api.library.site_id == site
        after = await state_of(api, file_ids, folder_ids)
        assert after == before

        got = await api.http.get(link_url)
        assert got.status_code == 200
        assert got.content == b"top secret\n"
        static = await api.http.get(public["url"])
        assert static.status_code == 200
        assert static.content == PNG_16x8
        archive = await api.http.get(zipped["downloadUrl"])
        assert archive.status_code == 200
        assert archive.content.startswith(b"PK")

        # the trash remembers what the folder took along
        await api.ok("POST", "/bulk/trash-bin/folders/restore", json={"folderIds": [doomed]})
        restored = await api.ok("GET", "/files/get-file-by-id", params={"fileId": taken["id"]})
        assert restored["file"]["state"] == "OK"
        assert restored["file"]["parentFolderId"] == doomed

        clock.advance(60 * 60 + 1)
        expired = await api.http.get(link_url)
        assert expired.status_code == 403
        assert expired.json()["details"]["applicationError"]["code"] == "FORBIDDEN"


async def test_old_api_key_works_and_a_new_app_rejects_others(settings: LibrarySettings, clock: FakeClock) -> None:
    async with running(settings, clock) as api:
        key = api.library.api_key
        await api.folder("kept")
    async with running(settings, clock) as api:
        listed = await api.http.get("/site-media/v1/folders", headers={"Authorization": key})
        assert listed.status_code == 200
        assert [f["displayName"] for f in listed.json()["folders"]] == ["kept"]
        wrong = await api.http.get("/site-media/v1/folders", headers={"Authorization": "mml_not-the-key"})
        assert wrong.status_code == 401


async def test_crash_leftovers_are_cleared_or_set_aside_at_start(settings: LibrarySettings, clock: FakeClock) -> None:
    async with running(settings, clock) as api:
        kept = await api.upload("kept.png", PNG_16x8, "image/png")
        data = api.library.data
        owned = {p.name for p in data.blobs.rglob("*") if p.is_file()}
        assert len(owned) == 3  # the bytes, and the preview and thumbnail processing made: all kept below

    partials = [data.incoming / "3f2a9c", data.incoming / "zip-0011223344556677.zip"]
    for partial in partials:
        partial.write_bytes(b"half an upload")
    (data.blobs / "ab").mkdir(exist_ok=True)
    unowned = data.blobs / "ab" / ("abcdef" + "0" * 26)
    unowned.write_bytes(PNG_16x8)
    life = settings.library_resumable_link_minutes * 60
    stray_part = data.resumable / ("f" * 32 + ".part")
    stray_part.write_bytes(b"a tus upload nobody knows, untouched for longer than any link lives")
    os.utime(stray_part, (clock() - life - 1, clock() - life - 1))
    young_part = data.resumable / ("e" * 32 + ".part")
    young = b"a tus upload nobody knows, written to within a link's life"
    young_part.write_bytes(young)
    os.utime(young_part, (clock() - 5, clock() - 5))

    async with running(settings, clock) as api:
        assert list(data.incoming.iterdir()) == []
        assert not stray_part.exists()
        # bytes the catalogue does not list are set aside, never deleted: they may be someone's only copy
        assert not unowned.exists() and not young_part.exists()
        aside = [p for p in data.quarantine.rglob("*") if p.is_file()]
        assert sorted(p.relative_to(data.quarantine).parts[1:] for p in aside) == [
            ("ab", unowned.name),
            ("resumable", young_part.name),
        ]
        assert {p.read_bytes() for p in aside} == {PNG_16x8, young}
        assert {p.name for p in data.blobs.rglob("*") if p.is_file()} == owned
        found = await api.ok("POST", "/files/search", json={})
        assert [f["id"] for f in found["files"]] == [kept["id"]]
        assert (await api.http.get(kept["url"])).content == PNG_16x8
        with api.library.db.read() as conn:
            assert conn.execute("SELECT count(*) FROM files").fetchone()[0] == 1


async def test_an_import_cut_short_becomes_failed(settings: LibrarySettings, clock: FakeClock) -> None:
    async with running(settings, clock) as api:
        lib = api.library
        now = clock()
        row = FileRow(
            id=lib.new_file_id(m.MediaType.IMAGE, "cut.png"),
            display_name="cut.png",
            parent_id=m.MEDIA_ROOT_ID,
            root="media",
            state="OK",
            private=False,
            media_type="IMAGE",
            mime_type="image/png",
            size=0,
            hash="",
            blob=None,
            status="PENDING",
            created=now,
            updated=now,
            source_url="https://example.com/cut.png",
        )
        lib.catalog.add_file(row)
        pending = await api.ok("GET", "/files/get-file-by-id", params={"fileId": row.id})
        assert pending["file"]["operationStatus"] == "PENDING"
        done = await api.upload("done.png", PNG_16x8, "image/png")

    clock.advance(30)
    async with running(settings, clock) as api:
        failed = await api.ok("GET", "/files/get-file-by-id", params={"fileId": row.id})
        assert failed["file"]["operationStatus"] == "FAILED"
        assert failed["file"]["sourceUrl"] == "https://example.com/cut.png"
        ready = await api.ok("GET", "/files/get-file-by-id", params={"fileId": done["id"]})
        assert ready["file"]["operationStatus"] == "READY"
        assert ready["file"] == done


async def test_an_upload_link_interrupted_by_a_crash_works_after_restart(
    settings: LibrarySettings, clock: FakeClock
) -> None:
    async with running(settings, clock) as api:
        minted = await api.ok(
            "POST", "/files/generate-upload-url", json={"mimeType": "text/plain", "fileName": "a.txt"}
        )
        upload_url = minted["uploadUrl"]
        claims = api.library.signer.check(upload_url.rsplit("/", 1)[1], AUD_UPLOAD)
        # a PUT was in flight when the process died: its claim is still marked busy
        assert api.library.records.claim(str(claims["jti"]), float(claims["exp"])) is None
        busy = await api.http.put(upload_url, content=b"again", headers={"Content-Type": "text/plain"})
        assert busy.status_code == 409
        assert busy.json()["details"]["applicationError"]["code"] == "UPLOAD_IN_PROGRESS"

    async with running(settings, clock) as api:
        retried = await api.http.put(upload_url, content=b"again", headers={"Content-Type": "text/plain"})
        assert retried.status_code == 200, retried.text
        used = await api.http.put(upload_url, content=b"twice", headers={"Content-Type": "text/plain"})
        assert used.status_code == 429
        assert used.json()["details"]["applicationError"]["code"] == "UPLOAD_TOKEN_ALREADY_USED"


def _metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


async def test_a_resumable_upload_continues_after_restart(settings: LibrarySettings, clock: FakeClock) -> None:
    payload = bytes(range(256)) * 40
    half = len(payload) // 2
    tus = {"Tus-Resumable": "1.0.0"}
    patch = {**tus, "Content-Type": "application/offset+octet-stream"}
    async with running(settings, clock) as api:
        minted = await api.ok(
            "POST",
            "/files/generate-resumable-upload-url",
            json={"mimeType": "application/octet-stream", "fileName": "blob.bin", "sizeInBytes": str(len(payload))},
        )
        token = minted["uploadToken"]
        created = await api.http.post(
            minted["uploadUrl"],
            headers={**tus, "Upload-Length": str(len(payload)), "Upload-Metadata": _metadata(token=token)},
        )
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        first = await api.http.patch(location, content=payload[:half], headers={**patch, "Upload-Offset": "0"})
        assert first.status_code == 204, first.text
        part = api.library.part_path(location.rsplit("/", 1)[1])

    with part.open("ab") as fh:  # bytes written past the recorded offset when the process died
        fh.write(b"torn write")

    async with running(settings, clock) as api:
        head = await api.http.head(location, headers=tus)
        assert head.status_code == 200
        assert head.headers["upload-offset"] == str(half)
        rest = await api.http.patch(location, content=payload[half:], headers={**patch, "Upload-Offset": str(half)})
        assert rest.status_code == 204, rest.text
        finished = await api.http.put(f"{minted['uploadUrl']}/{token}")
        assert finished.status_code == 200, finished.text
        file = finished.json()["file"]
        assert int(file["sizeInBytes"]) == len(payload)
        link = await api.ok("POST", "/files/generate-file-download-url", json={"fileId": file["id"]})
        got = await api.http.get(link["downloadUrls"][0]["url"])
        assert got.content == payload


async def test_database_is_intact_and_in_wal_mode(settings: LibrarySettings, clock: FakeClock) -> None:
    async with running(settings, clock) as api:
        await api.upload("a.png", PNG_16x8, "image/png")
        folder = await api.folder("f")
        await api.upload("b.txt", b"b", "text/plain", parentFolderId=folder)
        await api.ok("POST", "/bulk/folders/delete", json={"folderIds": [folder]})
        database: Path = api.library.data.database

    conn = sqlite3.connect(database)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT count(*) FROM files").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM files_text").fetchone() == (2,)
    finally:
        conn.close()


# --- key files, and what a crash leaves of a resumable upload or a new blob directory -------------

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


@asynccontextmanager
async def serving(lib: Library) -> AsyncIterator[Api]:
    """A fresh app in process on a library that is already open."""
    transport = httpx.ASGITransport(app=create_app(lib))
    async with httpx.AsyncClient(transport=transport, base_url="http://library.test") as http:
        yield Api(http, lib, "asgi")


async def mint_resumable(api: Api, **fields: Any) -> tuple[str, str]:
    body = await api.ok(
        "POST", "/files/generate-resumable-upload-url", json={"mimeType": "application/octet-stream", **fields}
    )
    return body["uploadUrl"], body["uploadToken"]


async def create_upload(api: Api, upload_url: str, token: str, length: int) -> httpx.Response:
    metadata = _metadata(token=token, filename="up.bin")
    return await api.http.post(upload_url, headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": metadata})


async def test_blank_key_files_are_replaced_and_the_api_still_needs_the_key(tmp_path: Path, clock: FakeClock) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "api_key").write_bytes(b"")  # what a crash between create and write used to leave
    (data / "signing_key").write_bytes(b" \n")
    settings = LibrarySettings(data_dir=data, library_allow_private_imports=False)
    with Library.open(settings, clock=clock) as lib:
        key = lib.api_key
        assert key.startswith("mml_") and len(key) > 40
        assert (data / "api_key").read_text() == key
        assert len((data / "signing_key").read_bytes().strip()) == 64
        async with serving(lib) as api:
            assert (await api.http.get("/site-media/v1/files")).status_code == 401
            assert (await api.http.get("/site-media/v1/files", headers={"Authorization": ""})).status_code == 401
            assert (await api.call("GET", "/files")).status_code == 200
    for name in ("api_key", "signing_key"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
    assert [p.name for p in data.iterdir() if p.name.startswith(".")] == []  # no temporary files left
    with Library.open(settings, clock=clock) as again:
        assert again.api_key == key


async def test_a_crash_before_the_row_commits_keeps_the_resumable_bytes(
    library: Library, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = bytes(range(256)) * 8
    crashed = tmp_path / "crashed"
    real_add_file = library.catalog.add_file

    def crash_here(*args: Any, **kwargs: Any) -> FileRow:
        # the data directory exactly as a crash at this point (before the row commits) would leave it
        shutil.copytree(library.data.root, crashed, ignore=shutil.ignore_patterns("members.lock"))
        return real_add_file(*args, **kwargs)

    monkeypatch.setattr(library.catalog, "add_file", crash_here)
    async with serving(library) as api:
        upload_url, token = await mint_resumable(api, fileName="blob.bin")
        location = (await create_upload(api, upload_url, token, len(payload))).headers["location"]
        sent = await api.http.patch(location, content=payload, headers={**OCTETS, "Upload-Offset": "0"})
        assert sent.status_code == 204
        finished = await api.http.put(f"{upload_url}/{token}")
        assert finished.status_code == 200, finished.text
        assert list(library.data.resumable.iterdir()) == []  # the .part goes once the row is in

    settings = LibrarySettings(data_dir=crashed, library_allow_private_imports=False)
    async with running(settings, clock) as api:
        head = await api.http.head(location, headers=TUS)
        assert head.status_code == 200
        assert head.headers["upload-offset"] == str(len(payload))
        again = await api.http.put(f"{upload_url}/{token}")
        assert again.status_code == 200, again.text
        link = await api.ok("POST", "/files/generate-file-download-url", json={"fileId": again.json()["file"]["id"]})
        assert (await api.http.get(link["downloadUrls"][0]["url"])).content == payload


async def test_resumable_records_without_their_bytes_are_dropped_at_start(
    settings: LibrarySettings, clock: FakeClock
) -> None:
    async with running(settings, clock) as api:
        upload_url, token = await mint_resumable(api)
        location = (await create_upload(api, upload_url, token, 10)).headers["location"]
        upload_id = location.rsplit("/", 1)[1]
        api.library.part_path(upload_id).unlink()
    async with running(settings, clock) as api:
        assert api.library.records.get_resumable(upload_id) is None
        assert (await api.http.head(location, headers=TUS)).status_code == 404
        assert (await create_upload(api, upload_url, token, 10)).status_code == 201


def test_a_new_blob_directory_is_fsynced_in_its_parent(library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[Path] = []

    def record(path: Path) -> None:
        synced.append(Path(path))
        fsync_dir(path)

    monkeypatch.setattr(blobs_module, "fsync_dir", record)
    source = library.data.incoming / "one"
    source.write_bytes(b"one")
    key = library.blobs.commit(blobs_module.Received(path=source, size=3, md5="", head=b""))
    assert synced == [library.data.blobs, library.blobs.path_of(key).parent]
    synced.clear()
    second = library.data.incoming / "two"
    second.write_bytes(b"two")
    received = blobs_module.Received(path=second, size=3, md5="", head=b"")
    monkeypatch.setattr(library.blobs, "path_of", lambda k: library.data.blobs / key[:2] / k)  # same shard
    library.blobs.link(received)
    assert synced == [library.data.blobs / key[:2]]
    assert second.exists()  # link leaves the source in place
