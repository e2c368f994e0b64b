"""Resumable uploads (tus 1.0.0 plus Wix's final ``PUT``), through tuspy and through raw httpx requests."""

from __future__ import annotations

import base64
import hashlib
import io
import random
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tusclient import client as tus_client

from media_mcp.library.app import create_app
from media_mcp.library.probe import probe
from media_mcp.library.service import Library
from media_mcp.library.uploads import MAX_ACTIVE_PER_TOKEN
from media_mcp.settings import LibrarySettings
from tests.conftest import Api, FakeClock, LoopbackServer

pytestmark = pytest.mark.anyio

WAIT = 20  # seconds: the bound on every wait in this module
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


# --- helpers ---------------------------------------------------------------------------------


@dataclass
class Minted:
    upload_url: str
    token: str

    @property
    def finish_url(self) -> str:
        return f"{self.upload_url}/{self.token}"


def data_of(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["details"]["applicationError"]["code"]
    return code


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def metadata(token: str | None, filename: str | None = "upload.bin", mime: str = "application/octet-stream") -> str:
    pairs = [f"contentType {b64(mime)}"]
    if filename is not None:
        pairs.append(f"filename {b64(filename)}")
    if token:
        pairs.append(f"token {b64(token)}")
    elif token is not None:
        pairs.append("token")  # a key without a value
    return ",".join(pairs)


async def mint(api: Api, mime: str = "application/octet-stream", **fields: Any) -> Minted:
    body = await api.ok("POST", "/files/generate-resumable-upload-url", json={"mimeType": mime, **fields})
    assert body["uploadProtocol"] == "TUS"
    assert body["uploadUrl"].endswith("/upload/tus")
    return Minted(body["uploadUrl"], body["uploadToken"])


async def create(api: Api, minted: Minted, length: int, filename: str | None = "upload.bin") -> str:
    """``POST`` the creation request; returns the upload's ``Location``."""
    headers = {**TUS, "Upload-Length": str(length), "Upload-Metadata": metadata(minted.token, filename)}
    response = await api.http.post(minted.upload_url, headers=headers)
    assert response.status_code == 201, response.text
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Upload-Offset"] == "0"
    location = response.headers["Location"]
    assert location.startswith(f"{minted.upload_url}/files/"), location
    return location


async def post_creation(api: Api, minted: Minted, length: bytes) -> httpx.Response:
    """A creation request whose ``Upload-Length`` is sent as given (any bytes, as a hostile client may)."""
    headers = [
        (b"Tus-Resumable", b"1.0.0"),
        (b"Upload-Length", length),
        (b"Upload-Metadata", metadata(minted.token).encode()),
    ]
    return await api.http.post(minted.upload_url, headers=headers)


async def patch(api: Api, location: str, offset: int, chunk: bytes) -> httpx.Response:
    return await api.http.patch(location, content=chunk, headers={**OCTETS, "Upload-Offset": str(offset)})


async def offset_of(api: Api, location: str) -> int:
    response = await api.http.head(location, headers=TUS)
    assert response.status_code == 200, response.status_code
    assert response.headers["Cache-Control"] == "no-store"
    return int(response.headers["Upload-Offset"])


async def send_all(api: Api, location: str, data: bytes, sizes: list[int]) -> None:
    offset = 0
    for size in sizes:
        chunk = data[offset : offset + size]
        response = await patch(api, location, offset, chunk)
        assert response.status_code == 204, response.text
        offset += len(chunk)
        assert int(response.headers["Upload-Offset"]) == offset
    assert offset == len(data)


async def finish(api: Api, minted: Minted, filename: str | None = None) -> httpx.Response:
    params = {"filename": filename} if filename else None
    return await api.http.put(minted.finish_url, params=params, content=b"{}")


async def download(api: Api, file_id: str) -> bytes:
    body = await api.ok("POST", "/files/generate-file-download-url", json={"fileId": file_id})
    response = await api.http.get(body["downloadUrls"][0]["url"])
    assert response.status_code == 200, response.text
    return response.content


async def everything(api: Api) -> list[dict[str, Any]]:
    body = await api.ok("POST", "/files/search", json={"paging": {"limit": 100}})
    files: list[dict[str, Any]] = body["files"]
    return files


def parts(library: Library) -> list[str]:
    return sorted(p.name for p in library.data.resumable.iterdir())


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


async def in_worker(fn: Callable[[], Any]) -> Any:
    """Run blocking client code (tuspy uses requests) in a thread, bounded in time."""
    with anyio.fail_after(WAIT):
        return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)


@pytest.fixture
async def socket_api(library: Library) -> AsyncIterator[Api]:
    """The library on a real loopback socket (tuspy needs a URL it can reach)."""
    with LoopbackServer(create_app(library)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            yield Api(http, library, "socket")


def tus_uploader(minted: Minted, data: bytes, chunk_size: int, filename: str, url: str | None = None) -> Any:
    """A tuspy uploader; given ``url`` it asks the server where to resume (a ``HEAD``)."""
    tus = tus_client.TusClient(minted.upload_url)
    meta = {"filename": filename, "contentType": "application/octet-stream", "token": minted.token}
    return tus.uploader(file_stream=io.BytesIO(data), chunk_size=chunk_size, metadata=meta, url=url)


# --- through tuspy ---------------------------------------------------------------------------


async def test_tuspy_uploads_megabytes_in_chunks(socket_api: Api) -> None:
    api = socket_api
    data = data_of(1, 3 * 1024 * 1024 + 4321)
    folder = await api.folder("videos")
    minted = await mint(api, fileName="big.bin", sizeInBytes=str(len(data)), parentFolderId=folder, labels=["tus"])

    uploader = await in_worker(lambda: tus_uploader(minted, data, 512 * 1024 + 3, "ignored.bin"))
    await in_worker(uploader.upload)
    assert uploader.offset == len(data)
    assert uploader.url.startswith(f"{minted.upload_url}/files/")
    assert await offset_of(api, uploader.url) == len(data)
    assert await everything(api) == []  # nothing is visible before the final PUT

    response = await finish(api, minted)
    assert response.status_code == 200, response.text
    file = response.json()["file"]
    assert file["displayName"] == "big.bin"
    assert file["sizeInBytes"] == str(len(data))
    assert file["hash"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert file["parentFolderId"] == folder
    assert file["labels"] == ["tus"]
    assert sha(await download(api, file["id"])) == sha(data)
    assert parts(api.library) == []
    # the transfer is consumed by the final PUT
    assert (await api.http.head(uploader.url, headers=TUS)).status_code == 404


async def test_tuspy_resumes_with_a_fresh_uploader(socket_api: Api) -> None:
    api = socket_api
    data = data_of(2, 2 * 1024 * 1024 + 777)
    chunk = 300_001
    minted = await mint(api, sizeInBytes=str(len(data)))

    first = await in_worker(lambda: tus_uploader(minted, data, chunk, "resumed.bin"))
    for _ in range(3):
        await in_worker(first.upload_chunk)
    assert first.offset == 3 * chunk
    location = first.url
    del first  # the first client is gone; only the URL survives

    response = await finish(api, minted)
    assert response.status_code == 400
    assert code_of(response) == "UPLOAD_NOT_COMPLETE"

    second = await in_worker(lambda: tus_uploader(minted, data, 1024 * 1024 - 1, "resumed.bin", url=location))
    assert second.offset == 3 * chunk  # learnt from the server with HEAD
    await in_worker(second.upload)
    assert second.offset == len(data)

    response = await finish(api, minted)  # no ?filename: the name travelled in Upload-Metadata
    assert response.status_code == 200, response.text
    file = response.json()["file"]
    assert file["displayName"] == "resumed.bin"
    assert sha(await download(api, file["id"])) == sha(data)


async def test_resume_after_the_connection_drops_mid_patch(socket_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api = socket_api
    data = data_of(3, 1_500_000)
    minted = await mint(api, fileName="dropped.bin", sizeInBytes=str(len(data)))
    location = await create(api, minted, len(data))
    response = await patch(api, location, 0, data[:100_000])
    assert response.status_code == 204

    recorded = watch(monkeypatch, api.library.records, "set_offset")
    port = urlsplit(location).port
    assert port is not None
    head = (
        f"PATCH {urlsplit(location).path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Tus-Resumable: 1.0.0\r\n"
        "Content-Type: application/offset+octet-stream\r\n"
        "Upload-Offset: 100000\r\n"
        f"Content-Length: {len(data) - 100_000}\r\n\r\n"
    ).encode()
    with anyio.fail_after(WAIT):
        stream = await anyio.connect_tcp("127.0.0.1", port)
        try:
            await stream.send(head + data[100_000:700_000])
        finally:
            await stream.aclose()
        assert await anyio.to_thread.run_sync(recorded.wait, WAIT), "the server never noticed the drop"

    kept = await offset_of(api, location)
    assert 100_000 <= kept <= 700_000
    part = api.library.part_path(urlsplit(location).path.rsplit("/", 1)[-1])
    assert part.read_bytes() == data[:kept]  # what the server kept is exactly a prefix of the file

    resumed = await in_worker(lambda: tus_uploader(minted, data, 256 * 1024 + 1, "dropped.bin", url=location))
    assert resumed.offset == kept
    await in_worker(resumed.upload)
    response = await finish(api, minted)
    assert response.status_code == 200, response.text
    assert sha(await download(api, response.json()["file"]["id"])) == sha(data)


# --- any chunking ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sizes",
    [
        [20_000],
        [1] * 64 + [19_936],
        [0, 7, 0, 13, 4099, 15_881],
        [6_666, 6_666, 6_666, 2],
    ],
    ids=["whole", "bytes-first", "with-empty-patches", "thirds"],
)
async def test_any_chunking_is_accepted(api: Api, sizes: list[int]) -> None:
    data = data_of(sum(sizes) + len(sizes), 20_000)
    minted = await mint(api, fileName="chunks.bin", sizeInBytes="20000")
    location = await create(api, minted, len(data))
    await send_all(api, location, data, sizes)
    response = await finish(api, minted)
    assert response.status_code == 200, response.text
    assert sha(await download(api, response.json()["file"]["id"])) == sha(data)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=4999), cuts=st.lists(st.integers(0, 5000), max_size=12))
async def test_random_chunking_round_trips(asgi_api: Api, payload: bytes, cuts: list[int]) -> None:
    # a control byte first: random bytes that start like a tag ("<a", "<?x") would be refused as markup for an
    # octet-stream link, which the upload policy's own tests cover; here only the chunking varies
    data = b"\x01" + payload
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    sizes = [b - a for a, b in zip(bounds, bounds[1:], strict=False)]
    minted = await mint(asgi_api, fileName="fuzz.bin", sizeInBytes=str(len(data)))
    location = await create(asgi_api, minted, len(data))
    await send_all(asgi_api, location, data, sizes)
    response = await finish(asgi_api, minted)
    assert response.status_code == 200, response.text
    file = response.json()["file"]
    assert file["sizeInBytes"] == str(len(data))
    assert await download(asgi_api, file["id"]) == data


# --- the protocol, request by request --------------------------------------------------------


async def test_options_lists_version_and_extensions(api: Api) -> None:
    minted = await mint(api)
    response = await api.http.options(minted.upload_url)
    assert response.status_code in (200, 204)
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert "1.0.0" in response.headers["Tus-Version"].split(",")
    extensions = {e.strip() for e in response.headers["Tus-Extension"].split(",")}
    assert {"creation", "termination"} <= extensions
    assert int(response.headers["Tus-Max-Size"]) == api.library.settings.library_max_file_bytes


async def test_tus_resumable_header_is_required(api: Api) -> None:
    minted = await mint(api)
    meta = metadata(minted.token)
    for headers in ({}, {"Tus-Resumable": "0.2.2"}):
        response = await api.http.post(
            minted.upload_url, headers={**headers, "Upload-Length": "10", "Upload-Metadata": meta}
        )
        assert response.status_code == 412, response.text
        assert response.headers["Tus-Resumable"] == "1.0.0"
    assert parts(api.library) == []

    location = await create(api, minted, 10)
    for headers in ({"Content-Type": "application/offset+octet-stream"}, {**OCTETS, "Tus-Resumable": "2.0.0"}):
        response = await api.http.patch(location, content=b"0123456789", headers={**headers, "Upload-Offset": "0"})
        assert response.status_code == 412, response.text
    response = await api.http.delete(location)
    assert response.status_code == 412
    assert await offset_of(api, location) == 0


async def test_patch_offset_must_match(api: Api) -> None:
    minted = await mint(api)
    location = await create(api, minted, 100)
    for wrong in ("5", "-1", "zero", ""):
        response = await api.http.patch(location, content=b"abc", headers={**OCTETS, "Upload-Offset": wrong})
        assert response.status_code == 409, (wrong, response.text)
    assert (await patch(api, location, 0, b"x" * 40)).status_code == 204
    for stale in (0, 39, 41):
        response = await patch(api, location, stale, b"y")
        assert response.status_code == 409, (stale, response.text)
    assert await offset_of(api, location) == 40


async def test_patch_needs_the_offset_octet_stream_type(api: Api) -> None:
    minted = await mint(api)
    location = await create(api, minted, 10)
    for mime in ("application/octet-stream", "text/plain", ""):
        headers = {**TUS, "Upload-Offset": "0", "Content-Type": mime}
        response = await api.http.patch(location, content=b"0123456789", headers=headers)
        assert response.status_code == 415, (mime, response.text)
    assert await offset_of(api, location) == 0
    response = await api.http.patch(
        location,
        content=b"0123456789",
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream; charset=x"},
    )
    assert response.status_code == 204


async def test_patch_past_upload_length_is_refused(api: Api) -> None:
    minted = await mint(api)
    location = await create(api, minted, 10)
    assert (await patch(api, location, 0, b"0123")).status_code == 204
    response = await patch(api, location, 4, b"456789+extra")
    assert response.status_code == 400, response.text
    assert await offset_of(api, location) == 4
    assert (await patch(api, location, 4, b"456789")).status_code == 204
    response = await patch(api, location, 10, b"!")
    assert response.status_code == 400
    assert await offset_of(api, location) == 10
    response = await finish(api, minted, "ten.txt")
    assert response.status_code == 200, response.text
    assert await download(api, response.json()["file"]["id"]) == b"0123456789"


async def test_creation_needs_a_genuine_resumable_token(api: Api) -> None:
    minted = await mint(api)
    header, payload, signature = minted.token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    put_link = await api.ok("POST", "/files/generate-upload-url", json={"mimeType": "text/plain"})
    put_token = put_link["uploadUrl"].rsplit("/", 1)[-1]
    for token in (None, "", forged, put_token, "garbage"):
        headers = {**TUS, "Upload-Length": "10", "Upload-Metadata": metadata(token)}
        response = await api.http.post(minted.upload_url, headers=headers)
        assert response.status_code == 403, (token, response.text)
        assert "Location" not in response.headers
    response = await api.http.post(
        minted.upload_url, headers={**TUS, "Upload-Length": "10", "Upload-Metadata": "token !!not-base64!!"}
    )
    assert response.status_code == 400
    assert parts(api.library) == []


async def test_upload_length_must_be_sane_and_match_the_declared_size(api: Api) -> None:
    minted = await mint(api, sizeInBytes="1000")
    meta = metadata(minted.token)
    for length, status in (("999", 400), ("1001", 400), ("", 400), ("ten", 400), ("0", 400)):
        response = await api.http.post(
            minted.upload_url, headers={**TUS, "Upload-Length": length, "Upload-Metadata": meta}
        )
        assert response.status_code == status, (length, response.text)
    too_big = str(api.library.settings.library_max_file_bytes + 1)
    response = await api.http.post(
        minted.upload_url, headers={**TUS, "Upload-Length": too_big, "Upload-Metadata": meta}
    )
    assert response.status_code == 413
    assert parts(api.library) == []
    await create(api, minted, 1000)


@pytest.mark.parametrize("value", [b"\xb2", b"9" * 5000, b"12345678901234567890", b"+5", b"5 "])
async def test_a_malformed_upload_length_is_a_400(asgi_api: Api, value: bytes) -> None:
    response = await post_creation(asgi_api, await mint(asgi_api), value)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("value", [b"\xb9", b"9" * 5000, b"0 "])
async def test_a_malformed_upload_offset_is_a_409(asgi_api: Api, value: bytes) -> None:
    location = await create(asgi_api, await mint(asgi_api), 3)
    headers = [(b"Tus-Resumable", b"1.0.0"), (b"Content-Type", b"application/offset+octet-stream")]
    response = await asgi_api.http.patch(location, content=b"x", headers=[*headers, (b"Upload-Offset", value)])
    assert response.status_code == 409, response.text
    assert await offset_of(asgi_api, location) == 0


async def test_head_reports_offset_and_length(api: Api) -> None:
    minted = await mint(api)
    location = await create(api, minted, 300)
    for sent in (0, 120, 300):
        response = await api.http.head(location, headers=TUS)
        assert response.status_code == 200
        assert response.headers["Upload-Offset"] == str(sent)
        assert response.headers["Upload-Length"] == "300"
        assert response.headers["Tus-Resumable"] == "1.0.0"
        if sent < 300:
            step = 120 if sent == 0 else 180
            assert (await patch(api, location, sent, b"z" * step)).status_code == 204
    missing = location.rsplit("/", 1)[0] + "/" + "0" * 32
    assert (await api.http.head(missing, headers=TUS)).status_code == 404
    assert (await api.http.head(location.rsplit("/", 1)[0] + "/not-an-id", headers=TUS)).status_code == 404


async def test_delete_terminates_the_upload(api: Api) -> None:
    minted = await mint(api)
    location = await create(api, minted, 50)
    assert (await patch(api, location, 0, b"q" * 50)).status_code == 204
    assert len(parts(api.library)) == 1

    response = await api.http.delete(location, headers=TUS)
    assert response.status_code == 204
    assert parts(api.library) == []
    assert (await api.http.head(location, headers=TUS)).status_code == 404
    assert (await patch(api, location, 50, b"")).status_code == 404
    assert (await api.http.delete(location, headers=TUS)).status_code == 404
    response = await finish(api, minted, "gone.bin")
    assert response.status_code == 400
    assert code_of(response) == "UPLOAD_NOT_COMPLETE"
    assert await everything(api) == []


async def test_final_put_needs_every_byte_then_works_once(api: Api) -> None:
    data = data_of(9, 4096)
    minted = await mint(api, sizeInBytes="4096")
    response = await finish(api, minted, "early.bin")  # no transfer at all yet
    assert response.status_code == 400
    assert code_of(response) == "UPLOAD_NOT_COMPLETE"

    location = await create(api, minted, len(data))
    assert (await patch(api, location, 0, data[:4000])).status_code == 204
    response = await finish(api, minted, "early.bin")
    assert response.status_code == 400
    assert code_of(response) == "UPLOAD_NOT_COMPLETE"
    assert await everything(api) == []

    assert (await patch(api, location, 4000, data[4000:])).status_code == 204
    response = await finish(api, minted, "whole.bin")
    assert response.status_code == 200, response.text
    file = response.json()["file"]
    assert file["displayName"] == "whole.bin"

    again = await finish(api, minted, "twice.bin")
    assert again.status_code == 429
    assert code_of(again) == "UPLOAD_TOKEN_ALREADY_USED"
    assert [f["id"] for f in await everything(api)] == [file["id"]]
    assert await download(api, file["id"]) == data
    assert parts(api.library) == []

    # a spent token starts no new transfer either
    headers = {**TUS, "Upload-Length": "4096", "Upload-Metadata": metadata(minted.token)}
    response = await api.http.post(minted.upload_url, headers=headers)
    assert response.status_code == 403, response.text
    assert parts(api.library) == []


async def test_final_put_without_any_filename_is_refused_and_can_be_retried(api: Api) -> None:
    minted = await mint(api)  # no fileName when minting
    location = await create(api, minted, 5, filename=None)  # and none in Upload-Metadata
    assert (await patch(api, location, 0, b"hello")).status_code == 204
    response = await finish(api, minted)
    assert response.status_code == 400
    assert code_of(response) == "MISSING_FILENAME"
    assert await offset_of(api, location) == 5  # the transfer is still there
    response = await finish(api, minted, "hello.txt")
    assert response.status_code == 200, response.text
    assert response.json()["file"]["displayName"] == "hello.txt"
    assert await download(api, response.json()["file"]["id"]) == b"hello"


async def test_final_put_refuses_other_tokens(api: Api) -> None:
    minted = await mint(api)
    location = await create(api, minted, 3)
    assert (await patch(api, location, 0, b"abc")).status_code == 204
    header, payload, signature = minted.token.split(".")
    flipped = signature[:3] + ("x" if signature[3] != "x" else "y") + signature[4:]
    response = await api.http.put(f"{minted.upload_url}/{header}.{payload}.{flipped}", params={"filename": "a.b"})
    assert response.status_code == 403
    assert code_of(response) == "INVALID_UPLOAD_TOKEN"
    assert await everything(api) == []
    assert (await finish(api, minted, "abc.txt")).status_code == 200


async def test_resumable_token_expires_on_the_clock(api: Api, clock: FakeClock) -> None:
    minted = await mint(api)
    location = await create(api, minted, 8)
    assert (await patch(api, location, 0, b"12345678")).status_code == 204
    clock.advance(api.library.settings.library_resumable_link_minutes * 60)

    assert (await api.http.head(location, headers=TUS)).status_code == 404
    assert (await patch(api, location, 8, b"")).status_code == 404
    response = await finish(api, minted, "late.bin")
    assert response.status_code == 403
    assert code_of(response) == "UPLOAD_URL_EXPIRED"
    headers = {**TUS, "Upload-Length": "8", "Upload-Metadata": metadata(minted.token)}
    assert (await api.http.post(minted.upload_url, headers=headers)).status_code == 403
    assert await everything(api) == []


async def test_a_token_may_have_only_a_few_unfinished_uploads(asgi_api: Api) -> None:
    minted = await mint(asgi_api)
    locations = [await create(asgi_api, minted, 10) for _ in range(MAX_ACTIVE_PER_TOKEN)]
    refused = await post_creation(asgi_api, minted, b"10")
    assert refused.status_code == 429
    assert len(parts(asgi_api.library)) == MAX_ACTIVE_PER_TOKEN
    assert (await asgi_api.http.delete(locations[0], headers=TUS)).status_code == 204
    await create(asgi_api, minted, 10)
    await create(asgi_api, await mint(asgi_api), 10)  # the limit is per token


async def test_expired_resumable_uploads_are_swept_while_running(asgi_api: Api, clock: FakeClock) -> None:
    lib = asgi_api.library
    location = await create(asgi_api, await mint(asgi_api), 10)
    assert (await patch(asgi_api, location, 0, b"abc")).status_code == 204
    upload_id = location.rsplit("/", 1)[1]
    assert lib.part_path(upload_id).exists()
    clock.advance(lib.settings.library_resumable_link_minutes * 60 + 1)
    await create(asgi_api, await mint(asgi_api), 10)  # any new upload sweeps the expired ones
    assert not lib.part_path(upload_id).exists()
    assert lib.records.get_resumable(upload_id) is None


async def test_folder_trashed_before_the_final_put_keeps_the_bytes(api: Api) -> None:
    data = data_of(11, 10_000)
    folder = await api.folder("inbox")
    minted = await mint(api, fileName="kept.bin", parentFolderId=folder)
    location = await create(api, minted, len(data))
    await send_all(api, location, data, [len(data)])
    await api.ok("POST", "/bulk/folders/delete", json={"folderIds": [folder]})

    response = await finish(api, minted)
    assert response.status_code == 400
    assert code_of(response) == "FOLDER_IN_TRASH"
    assert await everything(api) == []
    assert api.library.blobs.all_keys() == set()

    # the transfer survives the refusal: restore the folder and finish again
    await api.ok("POST", "/bulk/trash-bin/folders/restore", json={"folderIds": [folder]})
    response = await finish(api, minted)
    assert response.status_code == 200, response.text
    assert response.json()["file"]["parentFolderId"] == folder
    assert await download(api, response.json()["file"]["id"]) == data


# --- the hash: taken as the bytes arrive, or from disk when that is all there is -------------------


async def test_the_hash_is_right_whether_taken_on_the_way_or_after_a_restart(
    settings: LibrarySettings, clock: FakeClock
) -> None:
    data = data_of(11, 300_000)
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()

    async def session(lib: Library) -> AsyncIterator[Api]:
        transport = httpx.ASGITransport(app=create_app(lib))
        async with httpx.AsyncClient(transport=transport, base_url="http://library.test") as http:
            yield Api(http, lib, "asgi")

    # on the way: several PATCHes, one interrupted by a wrong offset, then the final PUT
    with Library.open(settings, clock=clock) as lib:
        async for api in session(lib):
            minted = await mint(api, sizeInBytes=str(len(data)))
            location = await create(api, minted, len(data))
            assert (await patch(api, location, 0, data[:100_000])).status_code == 204
            assert (await patch(api, location, 5, data[5:9])).status_code == 409
            assert (await patch(api, location, 100_000, data[100_000:])).status_code == 204
            file = (await finish(api, minted, "on-the-way.bin")).json()["file"]
            assert file["hash"] == md5 and lib.running == {}

    # a restart between PATCHes: the new process has no running hash and reads the file instead
    with Library.open(settings, clock=clock) as lib:
        async for api in session(lib):
            minted = await mint(api, sizeInBytes=str(len(data)))
            location = await create(api, minted, len(data))
            assert (await patch(api, location, 0, data[:123_456])).status_code == 204
            assert set(lib.running) == {location.rsplit("/", 1)[1]}
    with Library.open(settings, clock=clock) as lib:
        async for api in session(lib):
            assert lib.running == {}
            assert (await patch(api, location, 123_456, data[123_456:])).status_code == 204
            assert lib.running == {}  # nothing to continue from: the final PUT will hash from disk
            file = (await finish(api, minted, "after-restart.bin")).json()["file"]
            assert file["hash"] == md5
            assert await download(api, file["id"]) == data


async def test_a_cancelled_finish_frees_the_token(library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    """A final PUT cut short by cancellation (a server shutting down, a caller's deadline) can be sent again."""
    measuring, release = threading.Event(), threading.Event()

    def held_probe(*args: Any) -> Any:
        measuring.set()
        release.wait(WAIT)
        return probe(*args)

    transport = httpx.ASGITransport(app=create_app(library))
    async with httpx.AsyncClient(transport=transport, base_url="http://library.test", timeout=WAIT) as http:
        api = Api(http, library, "asgi")
        data = data_of(11, 70_000)
        minted = await mint(api)
        await send_all(api, await create(api, minted, len(data)), data, [len(data)])
        monkeypatch.setattr("media_mcp.library.uploads.probe", held_probe)
        try:
            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(finish, api, minted)
                    assert await anyio.to_thread.run_sync(measuring.wait, WAIT)
                    tg.cancel_scope.cancel()  # the app runs in this task group: the handler itself is cancelled
                    release.set()  # the thread's work finishes; the handler then sees the cancellation
        finally:
            release.set()
        monkeypatch.undo()
        retried = await finish(api, minted)
        assert retried.status_code == 200, retried.text
        assert [f["sizeInBytes"] for f in await everything(api)] == [str(len(data))]
