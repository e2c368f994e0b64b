"""Single-request uploads (``PUT <uploadUrl>``) driven through real HTTP clients."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import struct
import threading
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest

from media_mcp.library.app import create_app
from media_mcp.library.db import STORE_THREADS
from media_mcp.library.probe import MEASURE_BYTES, probe
from media_mcp.library.service import Library
from tests.conftest import Api, FakeClock, LoopbackServer, PNG_16x8

pytestmark = pytest.mark.anyio

WAIT = 15  # seconds: the bound on every wait in this module


# --- helpers ---------------------------------------------------------------------------------


def code_of(response: httpx.Response) -> str:
    """The Wix ``applicationError.code`` of an error answer."""
    body: dict[str, Any] = response.json()
    code: str = body["details"]["applicationError"]["code"]
    assert body["message"], body
    return code


def data_of(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def mint(api: Api, mime: str = "application/octet-stream", **fields: Any) -> str:
    body = await api.ok("POST", "/files/generate-upload-url", json={"mimeType": mime, **fields})
    url: str = body["uploadUrl"]
    assert "/upload/" in url
    return url


async def put(
    http: httpx.AsyncClient, url: str, data: bytes, filename: str | None = None, mime: str = "application/octet-stream"
) -> httpx.Response:
    params = {"filename": filename} if filename else None
    return await http.put(url, content=data, params=params, headers={"Content-Type": mime})


async def download(api: Api, file_id: str) -> bytes:
    body = await api.ok("POST", "/files/generate-file-download-url", json={"fileId": file_id})
    url = body["downloadUrls"][0]["url"]
    response = await api.http.get(url)
    assert response.status_code == 200, response.text
    return response.content


async def everything(api: Api) -> list[dict[str, Any]]:
    """Every live file under the media root, at any depth."""
    body = await api.ok("POST", "/files/search", json={"paging": {"limit": 100}})
    files: list[dict[str, Any]] = body["files"]
    return files


def leftovers(library: Library) -> tuple[list[str], set[str]]:
    """Partial uploads in ``incoming/`` and blobs on disk."""
    return sorted(p.name for p in library.data.incoming.iterdir()), library.blobs.all_keys()


def token_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1]


def with_token(url: str, token: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/upload/{token}"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def watch(monkeypatch: pytest.MonkeyPatch, obj: object, name: str) -> threading.Event:
    """Wrap ``obj.name`` so that an event is set each time it returns (or raises)."""
    original: Callable[..., Any] = getattr(obj, name)
    event = threading.Event()

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        finally:
            event.set()

    monkeypatch.setattr(obj, name, wrapper)
    return event


async def wait_for(event: threading.Event) -> None:
    with anyio.fail_after(WAIT):
        assert await anyio.to_thread.run_sync(event.wait, WAIT), "the server never got there"


# --- the happy path --------------------------------------------------------------------------


async def test_put_stores_png_with_every_requested_field(api: Api) -> None:
    folder = await api.folder("pictures")
    url = await mint(
        api,
        "image/png",
        fileName="pixel.png",
        sizeInBytes=str(len(PNG_16x8)),
        parentFolderId=folder,
        private=True,
        labels=["red", "tiny"],
    )
    # no Authorization: the token in the link is the whole authorisation
    response = await put(api.http, url, PNG_16x8, mime="image/png")
    assert response.status_code == 200, response.text
    file = response.json()["file"]
    assert file["displayName"] == "pixel.png"
    assert file["sizeInBytes"] == str(len(PNG_16x8))
    assert file["hash"] == hashlib.md5(PNG_16x8, usedforsecurity=False).hexdigest()
    assert file["mediaType"] == "IMAGE"
    assert file["media"]["image"]["image"]["width"] == 16
    assert file["media"]["image"]["image"]["height"] == 8
    assert file["parentFolderId"] == folder
    assert file["private"] is True
    assert file["labels"] == ["red", "tiny"]
    assert file["operationStatus"] == "READY"
    assert file["state"] == "OK"

    stored = await api.ok("GET", "/files/get-file-by-id", params={"fileId": file["id"]})
    assert stored["file"]["id"] == file["id"]
    assert stored["file"]["hash"] == file["hash"]
    assert await download(api, file["id"]) == PNG_16x8


async def test_put_multi_megabyte_body_arrives_byte_identical(api: Api) -> None:
    data = data_of(1, 3 * 1024 * 1024 + 12345)  # crosses the 1 MiB write blocks unevenly
    url = await mint(api, fileName="blob.bin", sizeInBytes=str(len(data)))
    response = await put(api.http, url, data)
    assert response.status_code == 200, response.text
    file = response.json()["file"]
    assert file["sizeInBytes"] == str(len(data))
    assert file["hash"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert file["private"] is False
    assert file["parentFolderId"] == "media-root"
    assert hashlib.sha256(await download(api, file["id"])).digest() == hashlib.sha256(data).digest()
    assert leftovers(api.library)[0] == []


async def test_filename_from_query_or_from_minted_name(api: Api) -> None:
    both = await mint(api, fileName="minted.txt")
    response = await put(api.http, both, b"hello", filename="from-query.txt")
    assert response.status_code == 200, response.text
    assert response.json()["file"]["displayName"] == "from-query.txt"

    minted_only = await mint(api, fileName="minted.txt")
    response = await put(api.http, minted_only, b"hello")
    assert response.status_code == 200, response.text
    assert response.json()["file"]["displayName"] == "minted.txt"

    query_only = await mint(api)
    response = await put(api.http, query_only, b"hello", filename="only-query.txt")
    assert response.status_code == 200, response.text
    assert response.json()["file"]["displayName"] == "only-query.txt"


async def test_missing_filename_is_refused_and_releases_the_link(api: Api) -> None:
    url = await mint(api)
    response = await put(api.http, url, b"some bytes")
    assert response.status_code == 400
    assert code_of(response) == "MISSING_FILENAME"
    assert await everything(api) == []
    assert leftovers(api.library) == ([], set())

    response = await put(api.http, url, b"some bytes", filename="named.bin")
    assert response.status_code == 200, response.text


async def test_empty_body_is_zero_file_size(api: Api) -> None:
    url = await mint(api, fileName="empty.bin")
    response = await put(api.http, url, b"")
    assert response.status_code == 400
    assert code_of(response) == "ZERO_FILE_SIZE"
    assert await everything(api) == []


async def test_zero_size_is_refused_when_minting(api: Api) -> None:
    response = await api.call(
        "POST", "/files/generate-upload-url", json={"mimeType": "text/plain", "fileName": "a.txt", "sizeInBytes": "0"}
    )
    assert response.status_code == 400
    assert code_of(response) == "ZERO_FILE_SIZE"


async def test_body_larger_than_declared_is_refused_and_link_stays_usable(api: Api) -> None:
    data = data_of(2, 4000)
    url = await mint(api, fileName="exact.bin", sizeInBytes="4000")
    response = await put(api.http, url, data + b"one byte too many")
    assert response.status_code == 400
    assert code_of(response) == "FILE_SIZE_OVER_LIMIT"
    assert await everything(api) == []
    assert leftovers(api.library) == ([], set())

    response = await put(api.http, url, data)
    assert response.status_code == 200, response.text
    assert await download(api, response.json()["file"]["id"]) == data


async def test_body_smaller_than_declared_is_a_size_mismatch(api: Api) -> None:
    data = data_of(3, 999)
    url = await mint(api, fileName="short.bin", sizeInBytes="1000")
    response = await put(api.http, url, data)
    assert response.status_code == 400
    assert code_of(response) == "SIZE_MISMATCH"
    assert await everything(api) == []
    assert leftovers(api.library) == ([], set())

    response = await put(api.http, url, data + b"!")
    assert response.status_code == 200, response.text
    assert response.json()["file"]["sizeInBytes"] == "1000"


async def test_body_over_the_library_limit_without_declared_size(api: Api) -> None:
    api.library.settings.library_max_file_bytes = 1000
    url = await mint(api, fileName="big.bin")
    response = await put(api.http, url, data_of(4, 1001))
    assert response.status_code == 400
    assert code_of(response) == "FILE_SIZE_OVER_LIMIT"
    response = await put(api.http, url, data_of(4, 1000))
    assert response.status_code == 200, response.text


async def test_a_link_is_single_use(api: Api) -> None:
    url = await mint(api, fileName="once.bin")
    first = await put(api.http, url, b"first")
    assert first.status_code == 200, first.text
    second = await put(api.http, url, b"second")
    assert second.status_code == 429
    assert code_of(second) == "UPLOAD_TOKEN_ALREADY_USED"
    files = await everything(api)
    assert [f["id"] for f in files] == [first.json()["file"]["id"]]
    assert await download(api, files[0]["id"]) == b"first"


async def test_tampered_tokens_are_refused(api: Api) -> None:
    url = await mint(api, fileName="t.bin", sizeInBytes="3")
    header, payload, signature = token_of(url).split(".")

    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    claims = json.loads(unb64url(payload))
    claims["jti"] = "f" * 24  # another upload request (the token names it; the request stays server-side)
    claims["exp"] += 3600
    changed = b64url(json.dumps(claims).encode())
    forged_key = b64url(hashlib.sha256(b"not the library's key").digest())
    for token in (
        f"{header}.{payload}.{flipped}",
        f"{header}.{changed}.{signature}",
        f"{header}.{changed}.{forged_key}",
        f"{header}.{payload}",
        "not-a-token",
    ):
        response = await put(api.http, with_token(url, token), b"abcd")
        assert response.status_code == 403, (token, response.text)
        assert code_of(response) == "INVALID_UPLOAD_TOKEN"
    assert await everything(api) == []

    # the genuine link is untouched by all that
    response = await put(api.http, url, b"abc")
    assert response.status_code == 200, response.text


async def test_links_expire_on_the_clock(api: Api, clock: FakeClock) -> None:
    minutes = api.library.settings.library_upload_link_minutes
    early = await mint(api, fileName="early.bin")
    late = await mint(api, fileName="late.bin")
    clock.advance(minutes * 60 - 1)
    response = await put(api.http, early, b"just in time")
    assert response.status_code == 200, response.text
    clock.advance(1)
    response = await put(api.http, late, b"too late")
    assert response.status_code == 403
    assert code_of(response) == "UPLOAD_URL_EXPIRED"
    assert [f["displayName"] for f in await everything(api)] == ["early.bin"]


async def test_tokens_minted_for_other_purposes_are_not_upload_tokens(api: Api) -> None:
    file = await api.upload("seed.bin", b"seed")
    body = await api.ok("POST", "/files/generate-file-download-url", json={"fileId": file["id"]})
    download_token = parse_qs(urlsplit(body["downloadUrls"][0]["url"]).query)["token"][0]
    resumable = await api.ok(
        "POST", "/files/generate-resumable-upload-url", json={"mimeType": "text/plain", "fileName": "r.txt"}
    )
    url = await mint(api, fileName="x.bin")
    for token in (download_token, resumable["uploadToken"]):
        response = await put(api.http, with_token(url, token), b"payload", filename="x.bin")
        assert response.status_code == 403, response.text
        assert code_of(response) == "INVALID_UPLOAD_TOKEN"
    # nor does a PUT upload token finish a resumable upload
    response = await api.http.put(f"{resumable['uploadUrl']}/{token_of(url)}", params={"filename": "x.bin"})
    assert response.status_code == 403, response.text
    assert [f["id"] for f in await everything(api)] == [file["id"]]


async def test_upload_tokens_stay_small_whatever_the_request(asgi_api: Api) -> None:
    """Long names and many labels never make a token (and so a URL) longer than 2000 characters."""
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
    resumable = await asgi_api.ok(
        "POST",
        "/files/generate-resumable-upload-url",
        json={"mimeType": "application/octet-stream", "fileName": name, "labels": many},
    )
    upload_url, token = resumable["uploadUrl"], resumable["uploadToken"]
    assert len(token) <= 2000
    metadata = f"token {base64.b64encode(token.encode()).decode()}"
    tus = {"Tus-Resumable": "1.0.0"}
    created = await asgi_api.http.post(upload_url, headers={**tus, "Upload-Length": "5", "Upload-Metadata": metadata})
    assert created.status_code == 201, created.text
    octets = {**tus, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    sent = await asgi_api.http.patch(created.headers["location"], content=b"hello", headers=octets)
    assert sent.status_code == 204
    finished = await asgi_api.http.put(f"{upload_url}/{token}")
    assert finished.status_code == 200, finished.text
    assert finished.json()["file"]["labels"] == many


async def test_upload_into_a_folder_trashed_after_minting(api: Api) -> None:
    folder = await api.folder("doomed")
    url = await mint(api, fileName="late.bin", parentFolderId=folder)
    await api.ok("POST", "/bulk/folders/delete", json={"folderIds": [folder]})

    response = await put(api.http, url, b"nowhere to go")
    assert response.status_code == 400
    assert code_of(response) == "FOLDER_IN_TRASH"
    assert await everything(api) == []
    listed = await api.ok("GET", "/files", params={"parentFolderId": folder})
    assert listed["files"] == []
    assert leftovers(api.library) == ([], set())

    # minting into a trashed folder is refused up front
    response = await api.call(
        "POST", "/files/generate-upload-url", json={"mimeType": "text/plain", "parentFolderId": folder}
    )
    assert response.status_code == 400
    assert code_of(response) == "FOLDER_IN_TRASH"

    # the failure released the link: once the folder is back, it works
    await api.ok("POST", "/bulk/trash-bin/folders/restore", json={"folderIds": [folder]})
    response = await put(api.http, url, b"home again")
    assert response.status_code == 200, response.text
    assert response.json()["file"]["parentFolderId"] == folder


async def test_file_path_creates_nested_folders_once(api: Api) -> None:
    top = await api.folder("top")
    url = await mint(api, fileName="deep.txt", parentFolderId=top, filePath="a/b/c")
    response = await put(api.http, url, b"deep")
    assert response.status_code == 200, response.text
    file = response.json()["file"]

    chain: list[str] = []
    folder_id = file["parentFolderId"]
    while folder_id != top:
        folder = (await api.ok("GET", f"/folders/{folder_id}"))["folder"]
        chain.append(folder["displayName"])
        folder_id = folder["parentFolderId"]
        assert len(chain) <= 3, chain
    assert chain == ["c", "b", "a"]

    again = await mint(api, fileName="deeper.txt", parentFolderId=top, filePath="/a/b/c/")
    response = await put(api.http, again, b"deeper")
    assert response.status_code == 200, response.text
    assert response.json()["file"]["parentFolderId"] == file["parentFolderId"]
    listed = await api.ok("GET", "/folders", params={"parentFolderId": top})
    assert [f["displayName"] for f in listed["folders"]] == ["a"]

    response = await api.call(
        "POST", "/files/generate-upload-url", json={"mimeType": "text/plain", "filePath": "a/../b"}
    )
    assert response.status_code == 400


# --- over a real socket ----------------------------------------------------------------------


async def test_concurrent_uploads_over_loopback(library: Library) -> None:
    blobs = {f"part-{i}.bin": data_of(100 + i, 50_000 + i * 97_531) for i in range(8)}
    with LoopbackServer(create_app(library)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            api = Api(http, library, "socket")
            urls = {name: await mint(api, fileName=name, sizeInBytes=str(len(data))) for name, data in blobs.items()}
            results: dict[str, dict[str, Any]] = {}

            async def one(name: str) -> None:
                response = await put(http, urls[name], blobs[name])
                assert response.status_code == 200, response.text
                results[name] = response.json()["file"]

            with anyio.fail_after(WAIT * 2):
                async with anyio.create_task_group() as tg:
                    for name in blobs:
                        tg.start_soon(one, name)

            assert len({f["id"] for f in results.values()}) == len(blobs)
            for name, data in blobs.items():
                assert results[name]["displayName"] == name
                assert results[name]["hash"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
                assert await download(api, results[name]["id"]) == data
            assert len(await everything(api)) == len(blobs)
            assert leftovers(library)[0] == []


async def test_interrupted_put_leaves_nothing_and_frees_the_link(
    library: Library, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    data = data_of(7, 1_000_000)
    claimed = watch(monkeypatch, library.records, "claim")
    released = watch(monkeypatch, library.records, "release")
    with LoopbackServer(create_app(library)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            api = Api(http, library, "socket")
            url = await mint(api, fileName="cut.bin")
            claimed.clear()
            path = urlsplit(url).path
            head = (
                f"PUT {path}?filename=cut.bin HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{server.port}\r\n"
                "Content-Type: application/octet-stream\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode()
            with anyio.fail_after(WAIT):
                stream = await anyio.connect_tcp("127.0.0.1", server.port)
                try:
                    await stream.send(head + data[:300_000])
                    await wait_for(claimed)
                    # while the first transfer holds the link, a second one is turned away
                    busy = await put(http, url, b"small: refused before the body is read")
                    assert busy.status_code == 409, busy.text
                    assert code_of(busy) == "UPLOAD_IN_PROGRESS"
                finally:
                    await stream.aclose()
            await wait_for(released)

            assert await everything(api) == []
            assert leftovers(library) == ([], set())
            # a client going away is routine, not an unexpected server error
            assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

            response = await put(http, url, data)
            assert response.status_code == 200, response.text
            file = response.json()["file"]
            assert file["displayName"] == "cut.bin"
            assert await download(api, file["id"]) == data


async def test_slow_file_work_does_not_hold_up_the_store(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Measuring uploaded files (a crafted image can take seconds) runs beside the store's few threads, not on them."""
    release, entered = threading.Event(), threading.Semaphore(0)

    def slow_probe(*args: Any) -> Any:
        entered.release()
        release.wait(WAIT)
        return probe(*args)

    monkeypatch.setattr("media_mcp.library.uploads.probe", slow_probe)
    urls = [await mint(api, "image/png", fileName=f"slow-{i}.png") for i in range(STORE_THREADS + 1)]
    statuses: list[int] = []

    async def upload(url: str) -> None:
        statuses.append((await put(api.http, url, PNG_16x8)).status_code)

    try:
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                for url in urls:
                    tg.start_soon(upload, url)
                for _ in urls:  # every upload is measuring its file at once
                    assert await anyio.to_thread.run_sync(entered.acquire, True, WAIT)
                assert await api.folder("meanwhile")  # a store write goes through all the same
                release.set()
    finally:
        release.set()
    assert statuses == [200] * len(urls)


async def test_a_cancelled_put_frees_the_link(library: Library) -> None:
    """A request cut short by cancellation (a server shutting down, a caller's deadline) gives its link back."""
    started, never = anyio.Event(), anyio.Event()

    async def stalled_body() -> Any:
        yield PNG_16x8[:10]
        started.set()
        await never.wait()

    transport = httpx.ASGITransport(app=create_app(library))
    async with httpx.AsyncClient(transport=transport, base_url="http://library.test", timeout=WAIT) as http:
        api = Api(http, library, "asgi")
        url = await mint(api, "image/png", fileName="cancelled.png")
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(partial(http.put, url, content=stalled_body()))
                await started.wait()
                tg.cancel_scope.cancel()  # the app runs in this task group: the handler itself is cancelled
            retried = await put(http, url, PNG_16x8)
        assert retried.status_code == 200, retried.text
        assert [f["displayName"] for f in await everything(api)] == ["cancelled.png"]


def jpeg(segments: bytes, width: int = 640, height: int = 480) -> bytes:
    """A baseline JPEG skeleton: SOI, ``segments``, then a frame header giving the size, then EOI."""
    frame = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + segments + frame + b"\xff\xd9"


async def test_image_size_is_read_from_the_start_of_the_file_only(api: Api) -> None:
    """Real headers (here 320 KiB of ICC-style segments) are measured; a crafted run of tiny segments that would
    keep the parser busy for seconds is cut off, and the file is stored without a size."""
    big_header = (b"\xff\xe2" + struct.pack(">H", 65535) + bytes(65533)) * 5
    endless = b"\xff\xfe\x00\x02" * ((MEASURE_BYTES // 4) + 1000)
    sizes = {}
    for name, data in (("icc.jpg", jpeg(big_header)), ("crafted.jpg", jpeg(endless))):
        url = await mint(api, "image/jpeg", fileName=name)
        response = await put(api.http, url, data, mime="image/jpeg")
        assert response.status_code == 200, response.text
        file = response.json()["file"]
        assert file["mediaType"] == "IMAGE"
        stored = api.library.catalog.get_file(file["id"])  # as measured on arrival (a skeleton fails processing)
        assert stored is not None
        sizes[name] = (stored.width, stored.height)
    assert sizes == {"icc.jpg": (640, 480), "crafted.jpg": (0, 0)}
