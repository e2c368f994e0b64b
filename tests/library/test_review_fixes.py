"""Regression tests for defects a review found: each one failed before its fix."""

from __future__ import annotations

import base64
import io
import json
import shutil
import stat
import threading
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.routing import Router

from media_mcp.library import blobs as blobs_module
from media_mcp.library import downloads, listing
from media_mcp.library.app import RequireApiKey, create_app
from media_mcp.library.catalog import FileRow, _page_sql
from media_mcp.library.importer import _blocked
from media_mcp.library.records import ArchiveRecord
from media_mcp.library.service import Library
from media_mcp.library.tokens import Signer
from media_mcp.library.uploads import MAX_ACTIVE_PER_TOKEN
from media_mcp.settings import LibrarySettings
from tests.conftest import Api, FakeClock, PNG_16x8

pytestmark = pytest.mark.anyio

WAIT = 20  # seconds: the bound on every wait in this module
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


@asynccontextmanager
async def serve(lib: Library, **kwargs: Any) -> AsyncIterator[tuple[Starlette, Api]]:
    """The app in process; unexpected errors come back as 500 answers instead of being raised."""
    app = create_app(lib, **kwargs)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://library.test") as http:
        yield app, Api(http, lib, "asgi")


def code_of(response: httpx.Response) -> str:
    details = response.json()["details"]
    if "applicationError" in details:
        code: str = details["applicationError"]["code"]
    else:
        code = details["validationError"]["fieldViolations"][0]["ruleName"]
    return code


def zip_names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return sorted(archive.namelist())


def temp_zips(lib: Library) -> list[Path]:
    return list(lib.data.incoming.glob("zip-*"))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def mint_resumable(api: Api, **fields: Any) -> tuple[str, str]:
    body = await api.ok(
        "POST", "/files/generate-resumable-upload-url", json={"mimeType": "application/octet-stream", **fields}
    )
    return body["uploadUrl"], body["uploadToken"]


async def tus_create(api: Api, upload_url: str, token: str, length: int | bytes) -> httpx.Response:
    size = length if isinstance(length, bytes) else str(length).encode()
    headers = [
        (b"Tus-Resumable", b"1.0.0"),
        (b"Upload-Length", size),
        (b"Upload-Metadata", f"token {b64(token)},filename {b64('up.bin')}".encode()),
    ]
    return await api.http.post(upload_url, headers=headers)


def stored(lib: Library, file_id: str) -> FileRow:
    found = lib.catalog.get_file(file_id)
    assert found is not None
    return found


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


# --- 1. an empty key file must not switch authentication off ---------------------------------------


async def test_blank_secret_files_are_replaced(tmp_path: Path, clock: FakeClock) -> None:
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
        async with serve(lib) as (_, api):
            assert (await api.http.get("/site-media/v1/files")).status_code == 401
            assert (await api.http.get("/site-media/v1/files", headers={"Authorization": ""})).status_code == 401
            assert (await api.call("GET", "/files")).status_code == 200
    for name in ("api_key", "signing_key"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
    assert [p.name for p in data.iterdir() if p.name.startswith(".")] == []  # no temporary files left
    with Library.open(settings, clock=clock) as again:
        assert again.api_key == key


def test_an_empty_key_is_refused_outright(tmp_path: Path, clock: FakeClock) -> None:
    for key in ("", "   "):
        with pytest.raises(ValueError, match="empty"):
            RequireApiKey(Router(), key)
    with pytest.raises(ValueError, match="empty"):
        Signer(b"", clock)
    settings = LibrarySettings(data_dir=tmp_path / "d", library_api_key=SecretStr("  "))
    with Library.open(settings, clock=clock) as lib:
        assert lib.api_key.startswith("mml_")


# --- 2 and 13. permanent zip links never carry private files, nor more than was minted ---------------


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
    blob = stored(lib, first["id"]).blob
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


# --- 3. a zip's temporary file never outlives its response --------------------------------------------


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

        blob = stored(library, file["id"]).blob
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


# --- 4 and the address rules of imports ---------------------------------------------------------------


async def test_credentials_do_not_follow_a_redirect_to_another_origin(tmp_path: Path, clock: FakeClock) -> None:
    seen: list[tuple[str, str | None, str | None, str | None, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        h = request.headers
        seen.append((h["host"], h.get("authorization"), h.get("cookie"), h.get("proxy-authorization"), h.get("x-tag")))
        if h["host"] == "cdn.test" and request.url.path == "/a":
            return httpx.Response(302, headers={"Location": "/b"})  # same origin: credentials stay
        if h["host"] == "cdn.test":
            return httpx.Response(302, headers={"Location": "http://elsewhere.test/c.png"})
        return httpx.Response(200, content=PNG_16x8, headers={"content-type": "image/png"})

    async def resolver(host: str, port: int) -> list[str]:
        return {"cdn.test": ["127.0.0.2"], "elsewhere.test": ["127.0.0.3"]}[host]

    settings = LibrarySettings(data_dir=tmp_path / "d", library_allow_private_imports=True)
    with Library.open(settings, clock=clock) as lib:
        async with serve(lib, import_transport=httpx.MockTransport(handler), resolver=resolver) as (_, api):
            sent = {
                "Authorization": "Bearer s3cret",
                "Cookie": "session=1",
                "Proxy-Authorization": "Basic p",
                "X-Tag": "t",
            }
            started = await api.ok("POST", "/files/import", json={"url": "http://cdn.test/a", "urlHeaders": sent})
            done = await api.ok("GET", "/files/get-file-by-id", params={"fileId": started["file"]["id"]})
            assert done["file"]["operationStatus"] == "READY"
    creds = ("Bearer s3cret", "session=1", "Basic p", "t")
    assert seen == [("cdn.test", *creds), ("cdn.test", *creds), ("elsewhere.test", None, None, None, "t")]


@pytest.mark.parametrize(
    "address",
    ["64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "2002:7f00:1::", "::a9fe:a9fe", "::a00:1"],
)
def test_ipv6_forms_of_private_ipv4_are_blocked(address: str) -> None:
    assert _blocked(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "64:ff9b::5db8:d822", "2606:2800:220:1::248"])
def test_public_addresses_are_not_blocked(address: str) -> None:
    assert not _blocked(address)


# --- 5. resumable uploads per token, and expired ones swept while running ----------------------------


async def test_a_token_may_have_only_a_few_unfinished_uploads(asgi_api: Api) -> None:
    upload_url, token = await mint_resumable(asgi_api)
    locations = []
    for _ in range(MAX_ACTIVE_PER_TOKEN):
        created = await tus_create(asgi_api, upload_url, token, 10)
        assert created.status_code == 201, created.text
        locations.append(created.headers["location"])
    refused = await tus_create(asgi_api, upload_url, token, 10)
    assert refused.status_code == 429
    assert len(list(asgi_api.library.data.resumable.iterdir())) == MAX_ACTIVE_PER_TOKEN
    assert (await asgi_api.http.delete(locations[0], headers=TUS)).status_code == 204
    assert (await tus_create(asgi_api, upload_url, token, 10)).status_code == 201
    other_url, other_token = await mint_resumable(asgi_api)  # the limit is per token
    assert (await tus_create(asgi_api, other_url, other_token, 10)).status_code == 201


async def test_expired_resumable_uploads_are_swept_while_running(asgi_api: Api, clock: FakeClock) -> None:
    lib = asgi_api.library
    upload_url, token = await mint_resumable(asgi_api)
    created = await tus_create(asgi_api, upload_url, token, 10)
    location = created.headers["location"]
    sent = await asgi_api.http.patch(location, content=b"abc", headers={**OCTETS, "Upload-Offset": "0"})
    assert sent.status_code == 204
    upload_id = location.rsplit("/", 1)[1]
    assert lib.part_path(upload_id).exists()
    clock.advance(lib.settings.library_resumable_link_minutes * 60 + 1)
    fresh_url, fresh_token = await mint_resumable(asgi_api)
    assert (await tus_create(asgi_api, fresh_url, fresh_token, 10)).status_code == 201
    assert not lib.part_path(upload_id).exists()
    assert lib.records.get_resumable(upload_id) is None


# --- 6. hostile input answers 400, never 500 -------------------------------------------------------------


@pytest.mark.parametrize("value", [b"\xb2", b"9" * 5000, b"12345678901234567890", b"+5", b"5 "])
async def test_odd_upload_length_is_refused(asgi_api: Api, value: bytes) -> None:
    upload_url, token = await mint_resumable(asgi_api)
    response = await tus_create(asgi_api, upload_url, token, value)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("value", [b"\xb9", b"9" * 5000, b"0 "])
async def test_odd_upload_offset_is_refused(asgi_api: Api, value: bytes) -> None:
    upload_url, token = await mint_resumable(asgi_api)
    location = (await tus_create(asgi_api, upload_url, token, 3)).headers["location"]
    headers = [(b"Tus-Resumable", b"1.0.0"), (b"Content-Type", b"application/offset+octet-stream")]
    response = await asgi_api.http.patch(location, content=b"x", headers=[*headers, (b"Upload-Offset", value)])
    assert response.status_code == 409, response.text


async def test_deeply_nested_json_is_a_400(asgi_api: Api) -> None:
    body = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await asgi_api.call("POST", "/files/search", content=body)
    assert response.status_code == 400
    assert code_of(response) == "INVALID_JSON"
    cursor = base64.urlsafe_b64encode(b"[" * 11_000).decode()
    deep = await asgi_api.call("GET", "/files", params={"paging.cursor": cursor})
    assert deep.status_code == 400


def _cursor(field: str, value: Any, kind: str = "files") -> str:
    query = {"k": kind, "s": "parent", "t": "media-root", "f": field, "d": True, "m": [], "p": None, "q": None}
    raw = json.dumps({"q": query, "a": [value, "some-id"]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sizeInBytes", 2**70),
        ("sizeInBytes", -1),
        ("sizeInBytes", "abc"),
        ("sizeInBytes", 1.5),
        ("sizeInBytes", True),
        ("updatedDate", 2**70),
        ("updatedDate", float("inf")),
        ("updatedDate", float("nan")),
        ("updatedDate", "yesterday"),
        ("displayName", 5),
        ("displayName", "x" * 5000),
    ],
)
async def test_cursor_values_must_fit_their_sort_field(asgi_api: Api, field: str, value: Any) -> None:
    response = await asgi_api.call("GET", "/files", params={"paging.cursor": _cursor(field, value)})
    assert response.status_code == 400, response.text
    assert response.json()["details"]["validationError"]["fieldViolations"][0]["field"] == "paging.cursor"


async def test_good_cursor_values_still_page(asgi_api: Api) -> None:
    await asgi_api.upload("a.txt", b"a", "text/plain")
    for field, value in (("sizeInBytes", 2**63 - 1), ("updatedDate", 2e9), ("displayName", "zzz")):
        await asgi_api.ok("GET", "/files", params={"paging.cursor": _cursor(field, value)})
    await asgi_api.ok("GET", "/folders", params={"paging.cursor": _cursor("displayName", "zzz", "folders")})


async def test_control_characters_in_a_search_are_ignored(asgi_api: Api) -> None:
    cat = await asgi_api.upload("cat.txt", b"c", "text/plain")
    await asgi_api.upload("dog.txt", b"d", "text/plain")
    for text in ("cat\x00", "\x00cat", "ca\x00t c", "cat\x01\x7f"):
        found = await asgi_api.ok("POST", "/files/search", json={"search": text})
        assert [f["id"] for f in found["files"]] == [cat["id"]], repr(text)
    everything = await asgi_api.ok("POST", "/files/search", json={"search": "\x00 \x1f"})
    assert len(everything["files"]) == 2


async def test_a_host_name_idna_cannot_decode_is_a_400(library: Library) -> None:
    async with serve(library, resolver=_no_lookups) as (_, api):
        for url in ("http://xn--/", "http://xn--a/x.png"):
            response = await api.call("POST", "/files/import", json={"url": url})
            assert response.status_code == 400, (url, response.text)
            assert code_of(response) == "IMPORT_URL_REFUSED"


# --- 7. upload tokens stay small whatever the request ---------------------------------------------------


async def test_upload_tokens_stay_small(asgi_api: Api) -> None:
    labels = [f"{i:03d}" + "L" * 197 for i in range(50)]
    name = "n" * 996 + ".txt"
    minted = await asgi_api.ok(
        "POST", "/files/generate-upload-url", json={"mimeType": "text/plain", "fileName": name, "labels": labels}
    )
    assert len(minted["uploadUrl"].rsplit("/", 1)[1]) <= 2000
    done = await asgi_api.http.put(minted["uploadUrl"], content=b"hello", headers={"Content-Type": "text/plain"})
    assert done.status_code == 200, done.text
    assert done.json()["file"]["labels"] == labels
    assert done.json()["file"]["displayName"] == name[:255]

    many = [f"{i:03d}" + "x" * 197 for i in range(500)]
    upload_url, token = await mint_resumable(asgi_api, fileName=name, labels=many)
    assert len(token) <= 2000
    location = (await tus_create(asgi_api, upload_url, token, 5)).headers["location"]
    sent = await asgi_api.http.patch(location, content=b"hello", headers={**OCTETS, "Upload-Offset": "0"})
    assert sent.status_code == 204
    finished = await asgi_api.http.put(f"{upload_url}/{token}")
    assert finished.status_code == 200, finished.text
    assert finished.json()["file"]["labels"] == many


# --- 8. a crash while finishing a resumable upload loses nothing -------------------------------------


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
    async with serve(library) as (_, api):
        upload_url, token = await mint_resumable(api, fileName="blob.bin")
        location = (await tus_create(api, upload_url, token, len(payload))).headers["location"]
        sent = await api.http.patch(location, content=payload, headers={**OCTETS, "Upload-Offset": "0"})
        assert sent.status_code == 204
        finished = await api.http.put(f"{upload_url}/{token}")
        assert finished.status_code == 200, finished.text
        assert list(library.data.resumable.iterdir()) == []  # the .part goes once the row is in

    settings = LibrarySettings(data_dir=crashed, library_allow_private_imports=False)
    with Library.open(settings, clock=clock) as after_crash:
        async with serve(after_crash) as (_, api):
            head = await api.http.head(location, headers=TUS)
            assert head.status_code == 200
            assert head.headers["upload-offset"] == str(len(payload))
            again = await api.http.put(f"{upload_url}/{token}")
            assert again.status_code == 200, again.text
            link = await api.ok(
                "POST", "/files/generate-file-download-url", json={"fileId": again.json()["file"]["id"]}
            )
            assert (await api.http.get(link["downloadUrls"][0]["url"])).content == payload


async def test_resumable_records_without_their_bytes_are_dropped_at_start(
    settings: LibrarySettings, clock: FakeClock
) -> None:
    with Library.open(settings, clock=clock) as lib:
        async with serve(lib) as (_, api):
            upload_url, token = await mint_resumable(api)
            location = (await tus_create(api, upload_url, token, 10)).headers["location"]
        upload_id = location.rsplit("/", 1)[1]
        lib.part_path(upload_id).unlink()
    with Library.open(settings, clock=clock) as lib:
        assert lib.records.get_resumable(upload_id) is None
        async with serve(lib) as (_, api):
            assert (await api.http.head(location, headers=TUS)).status_code == 404
            assert (await tus_create(api, upload_url, token, 10)).status_code == 201


# --- 9. MIME types are checked before they reach a header ------------------------------------------------


async def _no_lookups(host: str, port: int) -> list[str]:
    raise AssertionError(f"no name should be resolved, asked for {host!r}")


@pytest.mark.parametrize("mime", ["text/plain\r\nSet-Cookie: a=b", "text/plain\n", "not a mime", "text/plain; x=1"])
async def test_import_and_upload_refuse_a_malformed_mime_type(library: Library, mime: str) -> None:
    async with serve(library, resolver=_no_lookups) as (_, api):
        imported = await api.call("POST", "/files/import", json={"url": "http://cdn.test/a.txt", "mimeType": mime})
        assert imported.status_code == 400
        assert code_of(imported) == "UNSUPPORTED_FILE_FORMAT"
        minted = await api.call("POST", "/files/generate-upload-url", json={"mimeType": mime, "fileName": "a.txt"})
        assert minted.status_code == 400
        assert code_of(minted) == "UNSUPPORTED_FILE_FORMAT"


def _import_settings(tmp_path: Path) -> LibrarySettings:
    return LibrarySettings(data_dir=tmp_path / "d", library_allow_private_imports=True)


async def _loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.2"]


async def test_a_malformed_remote_content_type_is_ignored(tmp_path: Path, clock: FakeClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"plain words", headers={"content-type": "evil value/with spaces"})

    with Library.open(_import_settings(tmp_path), clock=clock) as lib:
        async with serve(lib, import_transport=httpx.MockTransport(handler), resolver=_loopback) as (_, api):
            started = await api.ok("POST", "/files/import", json={"url": "http://cdn.test/notes.txt"})
            file_id = started["file"]["id"]
            assert stored(lib, file_id).mime_type == "text/plain"


# --- 10 and 11. search sees what an import learnt, and short words see the same text as long ones ----------


async def test_search_finds_an_import_by_its_detected_type(tmp_path: Path, clock: FakeClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=PNG_16x8, headers={"content-type": "image/png"})

    with Library.open(_import_settings(tmp_path), clock=clock) as lib:
        async with serve(lib, import_transport=httpx.MockTransport(handler), resolver=_loopback) as (_, api):
            started = await api.ok(
                "POST", "/files/import", json={"url": "http://cdn.test/download?id=5", "displayName": "holiday"}
            )
            for text in ("png", "image/png", "holiday"):
                found = await api.ok("POST", "/files/search", json={"search": text})
                assert [f["id"] for f in found["files"]] == [started["file"]["id"]], text
            assert (await api.ok("POST", "/files/search", json={"search": "octet"}))["files"] == []


async def test_short_search_words_match_the_indexed_text_only(asgi_api: Api) -> None:
    cat = await asgi_api.upload("cat.txt", b"a", "text/plain")
    dog = await asgi_api.upload("dog.txt", b"b", "text/plain", labels=["x", "y"])
    summer = await asgi_api.upload("Ünïcødé.png", PNG_16x8, "image/png", labels=["été"])

    async def search(text: str) -> list[str]:
        found = await asgi_api.ok("POST", "/files/search", json={"search": text})
        return sorted(f["id"] for f in found["files"])

    assert await search("[]") == []
    assert await search('",') == []
    assert await search("t\\") == []
    assert await search("ét") == [summer["id"]]
    assert await search("ÉT") == [summer["id"]]
    assert await search("ün") == [summer["id"]]
    assert await search("ÜN") == [summer["id"]]
    assert await search("x") == sorted([cat["id"], dog["id"]])  # '.txt', 'text/plain' and a label
    assert await search("y") == [dog["id"]]


# --- 12. listing a folder by size needs no sort step ------------------------------------------------------


def test_listing_a_folder_by_size_uses_an_index(library: Library) -> None:
    query = listing.Query(kind="files", scope="parent", target="media-root", sort_field="sizeInBytes", descending=True)
    for after in (None, (10, "some-id")):
        sql, params = _page_sql("files", listing.page_of(query, None, after))
        with library.db.read() as conn:
            plan = " ".join(str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "files_parent_size" in plan, plan
        assert "TEMP B-TREE" not in plan, plan


# --- 14. bulk folder calls skip unknown ids ----------------------------------------------------------------


async def test_bulk_folder_calls_skip_unknown_ids(asgi_api: Api) -> None:
    keep = await asgi_api.folder("keep")
    goes = await asgi_api.folder("goes")
    unknown = "0123456789abcdef0123456789abcdef"
    for path in ("/bulk/folders/delete", "/bulk/trash-bin/folders/restore"):
        response = await asgi_api.call("POST", path, json={"folderIds": [unknown, "a/b"]})
        assert (response.status_code, response.json()) == (200, {})
    assert {f["id"] for f in (await asgi_api.ok("GET", "/folders"))["folders"]} == {keep, goes}
    assert (await asgi_api.ok("GET", "/trash-bin/folders"))["folders"] == []

    trashed = await asgi_api.call("POST", "/bulk/folders/delete", json={"folderIds": [unknown, goes]})
    assert (trashed.status_code, trashed.json()) == (200, {})
    assert [f["id"] for f in (await asgi_api.ok("GET", "/trash-bin/folders"))["folders"]] == [goes]
    restored = await asgi_api.call("POST", "/bulk/trash-bin/folders/restore", json={"folderIds": [goes, unknown]})
    assert (restored.status_code, restored.json()) == (200, {})
    assert (await asgi_api.ok("GET", "/trash-bin/folders"))["folders"] == []
    erased = await asgi_api.call("POST", "/bulk/folders/delete", json={"folderIds": [unknown, goes], "permanent": True})
    assert (erased.status_code, erased.json()) == (200, {})
    assert [f["id"] for f in (await asgi_api.ok("GET", "/folders"))["folders"]] == [keep]
    system = await asgi_api.call("POST", "/bulk/folders/delete", json={"folderIds": [unknown, "media-root"]})
    assert system.status_code == 400


# --- and a new blobs/xx/ directory is itself made durable ------------------------------------------------


def test_a_new_blob_directory_is_fsynced_in_its_parent(library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[Path] = []
    from media_mcp.library.datadir import fsync_dir as real

    def record(path: Path) -> None:
        synced.append(Path(path))
        real(path)

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
