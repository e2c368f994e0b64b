"""Download links: signed and expiring, Content-Disposition, Range, static URLs, zips, private files."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from media_mcp.library import downloads
from media_mcp.library.app import create_app
from media_mcp.library.records import ArchiveRecord
from media_mcp.library.rows import FileRow
from media_mcp.library.service import Library
from tests.conftest import Api, FakeClock, PNG_16x8

pytestmark = pytest.mark.anyio

WAIT = 20  # seconds: the bound on every wait in this module


async def _link(api: Api, file_id: str, **fields: Any) -> str:
    minted = await api.ok("POST", "/files/generate-file-download-url", json={"fileId": file_id, **fields})
    assert [u["assetKey"] for u in minted["downloadUrls"]] == fields.get("assetKeys", ["src"])
    url: str = minted["downloadUrls"][0]["url"]
    return url


async def test_download_link_serves_bytes_with_disposition(api: Api) -> None:
    file = await api.upload("report final.txt", b"0123456789", "text/plain")
    response = await api.http.get(await _link(api, file["id"]))
    assert response.status_code == 200
    assert response.content == b"0123456789"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert "report%20final.txt" in response.headers["content-disposition"]
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["x-content-type-options"] == "nosniff"

    inline = await api.http.get(
        await _link(api, file["id"], contentDisposition="INLINE", downloadFileName="Ünïcode name.txt")
    )
    assert inline.headers["content-disposition"].startswith("inline;")
    assert "filename*=utf-8''%C3%9Cn%C3%AFcode%20name.txt" in inline.headers["content-disposition"]


async def test_download_name_cannot_inject_headers_or_paths(api: Api) -> None:
    file = await api.upload("a.txt", b"abc", "text/plain")
    url = await _link(api, file["id"], downloadFileName='../../x"\r\nSet-Cookie: a=b\u202e.txt')
    response = await api.http.get(url)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    disposition = response.headers["content-disposition"]
    assert "/" not in disposition.split("filename", 1)[1]
    assert "\u202e" not in disposition


async def test_a_download_link_serves_byte_ranges(api: Api) -> None:
    file = await api.upload("digits.txt", b"0123456789", "text/plain")
    url = await _link(api, file["id"])
    part = await api.http.get(url, headers={"Range": "bytes=2-5"})
    assert part.status_code == 206
    assert part.content == b"2345"
    assert part.headers["content-range"] == "bytes 2-5/10"
    tail = await api.http.get(url, headers={"Range": "bytes=-3"})
    assert tail.content == b"789"
    unsatisfiable = await api.http.get(url, headers={"Range": "bytes=50-60"})
    assert unsatisfiable.status_code == 416
    head = await api.http.head(url)
    assert head.status_code == 200
    assert head.headers["content-length"] == "10"


async def test_link_expires_on_the_injected_clock(api: Api, clock: FakeClock) -> None:
    file = await api.upload("a.txt", b"abc", "text/plain", private=True)
    url = await _link(api, file["id"], expirationInMinutes=5)
    assert (await api.http.get(url)).status_code == 200
    clock.advance(5 * 60 - 1)
    assert (await api.http.get(url)).status_code == 200
    clock.advance(1)
    expired = await api.http.get(url)
    assert expired.status_code == 403
    assert expired.json()["details"]["applicationError"]["code"] == "FORBIDDEN"


async def test_expired_link_redirects_when_asked(api: Api, clock: FakeClock) -> None:
    file = await api.upload("a.txt", b"abc", "text/plain")
    url = await _link(api, file["id"], expirationInMinutes=1, expirationRedirectUrl="https://example.com/expired")
    clock.advance(61)
    response = await api.http.get(url)
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/expired"


async def test_default_expiry_is_wix_default_600_minutes(api: Api, clock: FakeClock) -> None:
    file = await api.upload("a.txt", b"abc", "text/plain")
    url = await _link(api, file["id"])
    clock.advance(600 * 60 - 1)
    assert (await api.http.get(url)).status_code == 200
    clock.advance(1)
    assert (await api.http.get(url)).status_code == 403


async def test_tampered_and_misused_tokens_are_refused(api: Api) -> None:
    secret = await api.upload("secret.txt", b"secret", "text/plain", private=True)
    other = await api.upload("other.txt", b"other", "text/plain")
    url = await _link(api, secret["id"])
    token = parse_qs(urlsplit(url).query)["token"][0]
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    cases = [
        url.replace(token, f"{header}.{payload}.{flipped}"),
        url.replace(token, f"{header}.{payload}."),
        url.replace(token, "eyJhbGciOiJub25lIn0." + payload + "."),  # alg=none
        url.split("?")[0],  # no token at all
        url.replace(secret["id"], other["id"]),  # a token for one file used on another
        url + "x" * 9000,
    ]
    for bad in cases:
        response = await api.http.get(bad)
        assert response.status_code == 403, bad
        assert b"secret" not in response.content
    upload = await api.ok("POST", "/files/generate-upload-url", json={"mimeType": "text/plain"})
    upload_token = upload["uploadUrl"].rsplit("/", 1)[1]
    wrong_audience = await api.http.get(url.replace(token, upload_token))
    assert wrong_audience.status_code == 403


async def test_private_files_are_never_served_without_a_token(api: Api) -> None:
    secret = await api.upload("secret.png", PNG_16x8, "image/png", private=True)
    public = await api.upload("open.png", PNG_16x8, "image/png")
    static_private = await api.http.get(secret["url"])
    assert static_private.status_code == 403
    assert PNG_16x8 not in static_private.content
    static_public = await api.http.get(public["url"])
    assert static_public.status_code == 200
    assert static_public.content == PNG_16x8
    assert static_public.headers["content-security-policy"] == "sandbox"
    icon = await api.http.get(secret["thumbnailUrl"])
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")


async def test_unknown_asset_keys_and_out_of_range_link_options_are_refused(api: Api) -> None:
    file = await api.upload("a.txt", b"abc", "text/plain")
    bad = await api.call(
        "POST", "/files/generate-file-download-url", json={"fileId": file["id"], "assetKeys": ["720p"]}
    )
    assert bad.json()["details"]["applicationError"]["code"] == "INVALID_ASSET_KEY"
    bad_bodies: list[dict[str, Any]] = [
        {"fileId": file["id"], "expirationInMinutes": 0},
        {"fileId": file["id"], "downloadFileName": "n" * 101},
        {"fileId": file["id"], "expirationInMinutes": 525601},
        {"fileId": "missing"},
    ]
    for body in bad_bodies:
        assert (await api.call("POST", "/files/generate-file-download-url", json=body)).status_code == 400


async def test_a_files_zip_holds_every_file_under_a_unique_name(api: Api) -> None:
    a = await api.upload("a.txt", b"aaa", "text/plain")
    b = await api.upload("a.txt", b"bbb", "text/plain")
    minted = await api.ok("POST", "/files/generate-download-url", json={"fileIds": [a["id"], b["id"]]})
    response = await api.http.get(minted["downloadUrl"])
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert sorted(archive.namelist()) == ["a (1).txt", "a.txt"]
        assert {archive.read(n) for n in archive.namelist()} == {b"aaa", b"bbb"}
    forged = minted["downloadUrl"].rsplit("=", 1)[0] + "=forged"
    assert (await api.http.get(forged)).status_code == 403
    missing = await api.call("POST", "/files/generate-download-url", json={"fileIds": ["missing"]})
    assert missing.status_code == 400
    assert (await api.call("POST", "/files/generate-download-url", json={"fileIds": []})).status_code == 400
    # incoming/ holds no leftover zip once the download is done
    assert [p.name for p in api.library.data.incoming.iterdir()] == []


# --- zips: what a link may hold, and what building one leaves behind -----------------------------


@asynccontextmanager
async def serve(lib: Library) -> AsyncIterator[tuple[Starlette, Api]]:
    """The app in process; unexpected errors come back as 500 answers instead of being raised."""
    app = create_app(lib)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://library.test") as http:
        yield app, Api(http, lib, "asgi")


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["details"]["applicationError"]["code"]
    return code


def zip_names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return sorted(archive.namelist())


def temp_zips(lib: Library) -> list[Path]:
    return list(lib.data.incoming.glob("zip-*"))


def blob_of(lib: Library, file_id: str) -> str | None:
    found = lib.catalog.get_file(file_id)
    assert found is not None
    return found.blob


def row(lib: Library, file_id: str, parent: str, blob: str | None, *, private: bool = False) -> FileRow:
    now = lib.clock()
    return FileRow(
        id=file_id,
        display_name=f"{file_id}.bin",
        parent_id=parent,
        root="media",
        state="OK",
        private=private,
        media_type="OTHER",
        mime_type="application/octet-stream",
        size=1,
        hash="0" * 32,
        blob=blob,
        status="READY",
        created=now,
        updated=now,
    )


async def test_files_zip_refuses_private_files(asgi_api: Api) -> None:
    public = await asgi_api.upload("public.txt", b"public", "text/plain")
    secret = await asgi_api.upload("salary.txt", b"PRIVATE", "text/plain", private=True)
    for ids in ([secret["id"]], [public["id"], secret["id"]]):
        refused = await asgi_api.call("POST", "/files/generate-download-url", json={"fileIds": ids})
        assert refused.status_code == 400
        assert code_of(refused) == "PRIVATE_FILE_IN_ARCHIVE"
        assert refused.json()["details"]["applicationError"]["data"]["ids"] == [secret["id"]]
    minted = await asgi_api.ok("POST", "/files/generate-download-url", json={"fileIds": [public["id"]]})
    assert zip_names(await asgi_api.http.get(minted["downloadUrl"])) == ["public.txt"]


async def test_folder_zip_serves_only_the_public_files_it_was_minted_for(asgi_api: Api, clock: FakeClock) -> None:
    folder = await asgi_api.folder("shared")
    inner = await asgi_api.folder("inner", folder)
    await asgi_api.upload("public.txt", b"public", "text/plain", parentFolderId=folder)
    await asgi_api.upload("hidden.txt", b"PRIVATE", "text/plain", parentFolderId=inner, private=True)
    minted = await asgi_api.ok("POST", f"/folders/{folder}/generate-download-url")
    await asgi_api.upload("salary.txt", b"PRIVATE", "text/plain", parentFolderId=folder, private=True)
    await asgi_api.upload("later.txt", b"later", "text/plain", parentFolderId=inner)
    clock.advance(10 * 365 * 86400)
    assert zip_names(await asgi_api.http.get(minted["downloadUrl"])) == ["public.txt"]
    again = await asgi_api.ok("POST", f"/folders/{folder}/generate-download-url")
    assert zip_names(await asgi_api.http.get(again["downloadUrl"])) == ["inner/later.txt", "public.txt"]


async def test_the_trash_cannot_be_zipped(asgi_api: Api) -> None:
    file = await asgi_api.upload("gone.txt", b"gone", "text/plain")
    await asgi_api.ok("POST", "/bulk/files/delete", json={"fileIds": [file["id"]]})
    refused = await asgi_api.call("POST", "/folders/trash-root/generate-download-url")
    assert refused.status_code == 400
    assert code_of(refused) == "SYSTEM_FOLDER"


async def test_folder_zip_limit_counts_public_files_at_mint(asgi_api: Api) -> None:
    lib = asgi_api.library
    folder = await asgi_api.folder("big")
    first = await asgi_api.upload("a.bin", b"x", parentFolderId=folder)
    blob = blob_of(lib, first["id"])
    with lib.db.tx() as conn:  # 999 more public rows sharing one blob, and five private ones
        for i in range(1004):
            r = row(lib, f"f{i:05d}", folder, blob, private=i >= 999)
            conn.execute(
                "INSERT INTO files (id, display_name, sort_name, parent_id, root, state, private, media_type,"
                " mime_type, size, hash, blob, status, created, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    r.id, r.display_name, r.display_name, r.parent_id, r.root, r.state, int(r.private),
                    r.media_type, r.mime_type, r.size, r.hash, r.blob, r.status, r.created, r.updated,
                ),
            )  # fmt: skip
    minted = await asgi_api.ok("POST", f"/folders/{folder}/generate-download-url")
    lib.catalog.add_file(row(lib, "z-late", folder, blob))  # 1001 public files now: too many to mint
    refused = await asgi_api.call("POST", f"/folders/{folder}/generate-download-url")
    assert refused.status_code == 400
    assert code_of(refused) == "TOO_MANY_FILES"
    names = zip_names(await asgi_api.http.get(minted["downloadUrl"]))
    assert len(names) == 1000
    assert "z-late.bin" not in names


async def test_an_archive_without_recorded_files_is_not_served(asgi_api: Api) -> None:
    lib = asgi_api.library
    folder = await asgi_api.folder("old")
    await asgi_api.upload("a.txt", b"a", "text/plain", parentFolderId=folder)
    minted = await asgi_api.ok("POST", f"/folders/{folder}/generate-download-url")
    archive_id = minted["downloadUrl"].split("/download/archive/")[1].split("?")[0]
    with lib.db.tx() as conn:  # as an older version recorded it: the folder only
        conn.execute("UPDATE archives SET file_ids = NULL WHERE id = ?", (archive_id,))
    assert lib.records.get_archive(archive_id) == ArchiveRecord(id=archive_id, file_ids=None, folder_id=folder)
    response = await asgi_api.http.get(minted["downloadUrl"])
    assert response.status_code == 410
    assert code_of(response) == "ARCHIVE_LINK_OUTDATED"


async def test_zip_temp_files_are_removed_whatever_the_answer(library: Library) -> None:
    async with serve(library) as (_, api):
        file = await api.upload("a.bin", b"0123456789" * 1000)
        minted = await api.ok("POST", "/files/generate-download-url", json={"fileIds": [file["id"]]})
        url = minted["downloadUrl"]
        for value in ("bytes=abc", "bytes=999999999-", "bytes=0-1", "bytes=0-1,5-9"):
            response = await api.http.get(url, headers={"Range": value})
            assert response.status_code == 200, value  # Range is ignored for zips
            assert "accept-ranges" not in response.headers
            assert zip_names(response) == ["a.bin"]
            assert temp_zips(library) == []

        blob = blob_of(library, file["id"])
        assert blob is not None
        library.blobs.path_of(blob).unlink()  # the build fails half-way
        broken = await api.http.get(url)
        assert broken.status_code == 500
        assert temp_zips(library) == []


async def test_concurrent_zip_builds_are_capped(library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    lock = threading.Lock()
    active = peak = 0
    real_build = downloads._build_zip

    def gated_build(target: Path, entries: list[tuple[str, Path]]) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            gate.wait(WAIT)
            real_build(target, entries)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(downloads, "_build_zip", gated_build)
    async with serve(library) as (app, api):
        file = await api.upload("a.bin", b"abc")
        minted = await api.ok("POST", "/files/generate-download-url", json={"fileIds": [file["id"]]})
        slots: anyio.Semaphore = app.state.archive_slots
        requests = downloads.ARCHIVE_SLOTS + 3
        codes: list[int] = []

        async def fetch() -> None:
            codes.append((await api.http.get(minted["downloadUrl"])).status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(requests):
                tg.start_soon(fetch)
            with anyio.fail_after(WAIT):
                while not (active == downloads.ARCHIVE_SLOTS and slots.statistics().tasks_waiting == 3):
                    await anyio.wait_all_tasks_blocked()
            gate.set()
        assert codes == [200] * requests
        assert peak == downloads.ARCHIVE_SLOTS
        assert temp_zips(library) == []
