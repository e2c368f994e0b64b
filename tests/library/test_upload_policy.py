"""Hostile uploads and links, class by class (issue 11), through real HTTP clients (httpx, tuspy).

- The stored type is decided on the content when the bytes are stored, against what the link was minted for:
  markup (SVG, HTML, any XML, behind whatever whitespace, NULs or BOMs) is refused on a link minted for another
  type, the bytes go and the link stays usable; a name sent with the bytes sets the display name only.
- The byte cap travels with the link: declared size or not, no byte past it is taken (PUT, tus creation and
  transfer), whichever process of the data directory serves it, and the server's cap reaches the library.
- An expired link redirects only to an http(s) URL, and a link asking for anything else is not minted.
"""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from media_mcp import backends
from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from media_mcp.library.tokens import AUD_DOWNLOAD
from media_mcp.settings import LibrarySettings, ServerSettings, WixSettings
from media_mcp.wix import messages as msg
from tests.conftest import Api, FakeClock, LoopbackServer, PNG_16x8

pytestmark = pytest.mark.anyio

WAIT = 20  # seconds: the bound on every wait in this module
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}
CAP = 1000

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="3" height="4"><script>alert(1)</script></svg>'
HOSTILE = {  # content a browser (or an XML parser) would run as markup, however it starts
    "svg": SVG,
    "svg after a form feed": b"\x0c" + SVG,
    "svg after a vertical tab and line breaks": b"\x0b\r\n\t " + SVG,
    "svg after NULs": b"\x00\x00\x00" + SVG,
    "svg after a BOM and a form feed": b"\xef\xbb\xbf\x0c" + SVG,
    "svg after unicode spaces": "\u00a0\u2003\u200b\u2028\ufeff".encode() + SVG,
    "svg in utf-16 with a BOM": b"\xff\xfe" + SVG.decode().encode("utf-16-le"),
    "svg in utf-16 without a BOM": SVG.decode().encode("utf-16-be"),
    "svg past the first 8 KiB of whitespace": b" \t\x0c\n" * 3000 + SVG,
    "svg after an xml prolog and comment": b'<?xml version="1.0"?>\n<!-- drawn by hand -->\n' + SVG,
    "namespaced svg": b'<s:svg xmlns:s="http://www.w3.org/2000/svg"><s:script>alert(1)</s:script></s:svg>',
    "html": b"<!DOCTYPE html><html><script>alert(1)</script></html>",
    "html after a comment": b"<!-- hi --><script>alert(1)</script>",
    "script after a form feed": b"\x0c<script>alert(1)</script>",
    "img with onerror": b"<img src=x onerror=alert(1)>",
    "xhtml": b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>',
    "xml of any root": b'<feed xmlns:h="http://www.w3.org/1999/xhtml"><h:script>alert(1)</h:script></feed>',
    "xml with a stylesheet": b'<?xml-stylesheet type="text/xsl" href="x.xsl"?><doc/>',
    "flash": b"FWS\x0a" + bytes(40),
}
HARMLESS = {  # a link's type, a file name for it and a file it may bring
    "image/png": ("cat.png", PNG_16x8),
    "text/plain": ("notes.txt", b"just words\n"),
    "application/octet-stream": ("data.bin", b"\x00\x01\x02\x03"),
    "video/mp4": ("clip.mp4", b"not really a video"),
    "model/gltf-binary": ("chair.glb", b"glTF\x02\x00\x00\x00"),
    "application/pdf": ("doc.pdf", b"%PDF-1.4\n%%EOF\n"),
}


# --- helpers ---------------------------------------------------------------------------------


def code_of(response: httpx.Response) -> str:
    """The Wix ``applicationError.code`` of an error answer (which always has a message)."""
    body: dict[str, Any] = response.json()
    assert body["message"], body
    code: str = body["details"]["applicationError"]["code"]
    return code


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def mint_put(api: Api, mime: str, **fields: Any) -> str:
    body = await api.ok("POST", "/files/generate-upload-url", json={"mimeType": mime, **fields})
    url: str = body["uploadUrl"]
    return url


async def put(api: Api, url: str, data: bytes, filename: str | None = None) -> httpx.Response:
    params = {"filename": filename} if filename else None
    return await api.http.put(url, content=data, params=params, headers={"Content-Type": "image/png"})


async def mint_tus(api: Api, mime: str, **fields: Any) -> tuple[str, str]:
    body = await api.ok("POST", "/files/generate-resumable-upload-url", json={"mimeType": mime, **fields})
    return body["uploadUrl"], body["uploadToken"]


async def tus_create(api: Api, endpoint: str, token: str, length: int, filename: str = "up.bin") -> httpx.Response:
    meta = f"filename {b64(filename)},contentType {b64('image/png')},token {b64(token)}"
    return await api.http.post(endpoint, headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": meta})


async def tus_send(api: Api, endpoint: str, token: str, data: bytes, filename: str = "up.bin") -> None:
    """Create a transfer and send every byte of ``data`` in two PATCHes."""
    created = await tus_create(api, endpoint, token, len(data), filename)
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    half = len(data) // 2
    for offset, chunk in ((0, data[:half]), (half, data[half:])):
        sent = await api.http.patch(location, content=chunk, headers={**OCTETS, "Upload-Offset": str(offset)})
        assert sent.status_code == 204, sent.text


async def tus_finish(api: Api, endpoint: str, token: str, filename: str | None = None) -> httpx.Response:
    params = {"filename": filename} if filename else None
    return await api.http.put(f"{endpoint}/{token}", params=params, content=b"{}")


async def download(api: Api, file_id: str) -> httpx.Response:
    body = await api.ok("POST", "/files/generate-file-download-url", json={"fileId": file_id})
    response = await api.http.get(body["downloadUrls"][0]["url"])
    assert response.status_code == 200, response.text
    return response


async def everything(api: Api) -> list[dict[str, Any]]:
    body = await api.ok("POST", "/files/search", json={"paging": {"limit": 100}})
    files: list[dict[str, Any]] = body["files"]
    return files


def nothing_left(library: Library) -> None:
    """No partial upload, transfer or blob is left behind."""
    assert list(library.data.incoming.iterdir()) == []
    assert list(library.data.resumable.iterdir()) == []
    assert library.blobs.all_keys() == set()


async def in_worker(fn: Callable[[], Any]) -> Any:
    """Run blocking client code (tuspy uses requests) in a thread; the caller bounds the wait."""
    return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)


# --- class 3: the type is decided on the content, when the bytes are stored -------------------


def _pairs() -> list[tuple[bytes, list[str]]]:
    """Each hostile content with three of the link types, so that every type meets several contents."""
    types = list(HARMLESS)
    return [(content, [types[(i + k) % len(types)] for k in (0, 2, 4)]) for i, content in enumerate(HOSTILE.values())]


@pytest.mark.parametrize(("content", "mimes"), _pairs(), ids=list(HOSTILE))
async def test_markup_put_to_a_link_minted_for_another_type_is_refused(
    api: Api, content: bytes, mimes: list[str]
) -> None:
    for stored_before, mime in enumerate(mimes):
        name, harmless = HARMLESS[mime]
        url = await mint_put(api, mime, fileName=name)
        refused = await put(api, url, content)
        assert refused.status_code == 400, (mime, refused.text)
        assert code_of(refused) == "MISMATCH_MIME_TYPE"
        assert len(await everything(api)) == stored_before
        assert api.library.blobs.all_keys() == api.library.catalog.blob_keys()  # no blob but the files' and theirs
        assert list(api.library.data.incoming.iterdir()) == []
        # the bytes went, the link did not: a correct file can still be sent with it
        stored = await put(api, url, harmless)
        assert stored.status_code == 200, (mime, stored.text)
    types = {f["displayName"]: (await download(api, f["id"])).headers["content-type"] for f in await everything(api)}
    assert not [t for t in types.values() if "xml" in t or "html" in t or "svg" in t], types


@pytest.mark.parametrize(
    "name", ["svg after a form feed", "html", "xml of any root", "svg past the first 8 KiB of whitespace"]
)
@pytest.mark.parametrize("mime", ["image/png", "application/octet-stream"])
async def test_markup_sent_over_tus_is_refused_and_the_token_kept(api: Api, name: str, mime: str) -> None:
    endpoint, token = await mint_tus(api, mime)
    await tus_send(api, endpoint, token, HOSTILE[name])
    refused = await tus_finish(api, endpoint, token, "pixel.png")
    assert refused.status_code == 400, refused.text
    assert code_of(refused) == "MISMATCH_MIME_TYPE"
    assert await everything(api) == []
    nothing_left(api.library)  # the transfer and its bytes are gone

    await tus_send(api, endpoint, token, PNG_16x8)  # the same token brings a correct file
    stored = await tus_finish(api, endpoint, token, "pixel.png")
    assert stored.status_code == 200, stored.text
    assert stored.json()["file"]["mediaType"] == "IMAGE"


@pytest.fixture
async def socket_api(library: Library) -> AsyncIterator[Api]:
    with LoopbackServer(create_app(library)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            yield Api(http, library, "socket")


async def test_markup_sent_with_tuspy_is_refused(socket_api: Api) -> None:
    api = socket_api
    endpoint, token = await mint_tus(api, "image/png", fileName="pixel.png")
    content = b"\x0c\x0b" * 5000 + SVG
    meta = {"filename": "pixel.png", "contentType": "image/png", "token": token}
    uploader = tus_client.TusClient(endpoint).uploader(file_stream=io.BytesIO(content), chunk_size=4096, metadata=meta)
    with anyio.fail_after(WAIT):
        await in_worker(uploader.upload)
    refused = await tus_finish(api, endpoint, token)
    assert refused.status_code == 400, refused.text
    assert code_of(refused) == "MISMATCH_MIME_TYPE"
    assert await everything(api) == []


@pytest.mark.parametrize("query_name", ["evil.html", "evil.svg", "evil.xhtml", "evil.xml", "evil.js"])
async def test_a_name_sent_with_the_bytes_sets_the_display_name_only(api: Api, query_name: str) -> None:
    png = await put(api, await mint_put(api, "image/png", fileName="cat.png"), PNG_16x8, query_name)
    assert png.status_code == 200, png.text
    file = png.json()["file"]
    assert (file["displayName"], file["mediaType"]) == (query_name, "IMAGE")
    assert not file["id"].endswith(query_name.rsplit(".", 1)[1])
    assert (await download(api, file["id"])).headers["content-type"] == "image/png"

    text = await put(api, await mint_put(api, "text/plain", fileName="notes.txt"), b"just words", query_name)
    assert text.status_code == 200, text.text
    assert text.json()["file"]["mediaType"] == "DOCUMENT"
    assert (await download(api, text.json()["file"]["id"])).headers["content-type"].startswith("text/plain")

    # a link minted without a name or type: the name sent later does not make the bytes a page or a script
    untyped = await put(api, await mint_put(api, "application/octet-stream"), b"just words", query_name)
    assert untyped.status_code == 200, untyped.text
    assert untyped.json()["file"]["mediaType"] == "OTHER"
    assert (await download(api, untyped.json()["file"]["id"])).headers["content-type"] == "application/octet-stream"


async def test_a_markup_name_given_when_minting_an_untyped_link_does_not_type_it(api: Api) -> None:
    url = await mint_put(api, "application/octet-stream", fileName="page.html")
    stored = await put(api, url, b"hello <b>there</b>")
    assert stored.status_code == 200, stored.text
    assert (await download(api, stored.json()["file"]["id"])).headers["content-type"] == "application/octet-stream"
    # a harmless name still types a link minted as octet-stream (Wix's advice for mis-detected files)
    url = await mint_put(api, "application/octet-stream", fileName="notes.txt")
    assert (await put(api, url, b"hello")).json()["file"]["mediaType"] == "DOCUMENT"


async def test_a_name_sent_over_tus_does_not_type_the_file(api: Api) -> None:
    endpoint, token = await mint_tus(api, "application/octet-stream")
    await tus_send(api, endpoint, token, b"hello <b>there</b>", filename="page.html")
    stored = await tus_finish(api, endpoint, token)
    assert stored.status_code == 200, stored.text
    file = stored.json()["file"]
    assert (file["displayName"], file["mediaType"]) == ("page.html", "OTHER")
    assert (await download(api, file["id"])).headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize(
    ("mime", "name"),
    [("text/plain", "page.html"), ("text/plain", "feed.xml"), ("text/html", "notes.txt"), ("text/csv", "x.xhtml")],
)
async def test_a_link_is_not_minted_for_a_name_and_type_of_different_kinds(api: Api, mime: str, name: str) -> None:
    for path in ("/files/generate-upload-url", "/files/generate-resumable-upload-url"):
        refused = await api.call("POST", path, json={"mimeType": mime, "fileName": name})
        assert refused.status_code == 400, refused.text
        assert code_of(refused) == "MISMATCH_MIME_TYPE"


async def test_markup_is_stored_on_a_link_minted_for_it_and_served_as_minted(api: Api) -> None:
    svg = await put(api, await mint_put(api, "image/svg+xml", fileName="logo.svg"), b"\x0c\n" + SVG)
    assert svg.status_code == 200, svg.text
    assert svg.json()["file"]["mediaType"] == "VECTOR"
    served = await download(api, svg.json()["file"]["id"])
    assert served.headers["content-type"] == "image/svg+xml"
    assert served.headers["content-security-policy"] == "sandbox"
    # markup of another kind keeps the type the link was minted for, never the sniffed one
    page = await put(api, await mint_put(api, "application/xml", fileName="feed"), HOSTILE["html"])
    assert page.status_code == 200, page.text
    served = await download(api, page.json()["file"]["id"])
    assert served.headers["content-type"].startswith("application/xml")


# --- class 4: the byte cap travels with the link ---------------------------------------------


@asynccontextmanager
async def library_api(data_dir: Path, clock: FakeClock, kind: str, **settings: Any) -> AsyncIterator[Api]:
    """A library on ``data_dir`` (its own settings) behind an httpx client, in-process or on a loopback socket."""
    with Library.open(LibrarySettings(data_dir=data_dir, **settings), clock=clock) as lib:
        app = create_app(lib)
        if kind == "asgi":
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://library.test") as http:
                yield Api(http, lib, kind)
            return
        with LoopbackServer(app) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
                yield Api(http, lib, kind)


@pytest.fixture(params=["asgi", "socket"])
async def capped(request: pytest.FixtureRequest, data_dir: Path, clock: FakeClock) -> AsyncIterator[Api]:
    """A library that takes files of at most `CAP` bytes."""
    async with library_api(data_dir, clock, request.param, library_max_file_bytes=CAP) as api:
        yield api


async def _chunks(data: bytes, size: int = 700) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", [CAP + 1, 50_000])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_put_link_minted_without_a_size_takes_no_byte_past_the_cap(
    capped: Api, size: int, chunked: bool
) -> None:
    url = await mint_put(capped, "application/octet-stream", fileName="big.bin")
    body = bytes(size)
    content: Any = _chunks(body) if chunked else body
    refused = await capped.http.put(url, content=content)
    assert refused.status_code == 400, refused.text
    assert code_of(refused) == "FILE_SIZE_OVER_LIMIT"
    assert await everything(capped) == []
    nothing_left(capped.library)
    stored = await capped.http.put(url, content=bytes(CAP))  # the link is not spent; the cap itself fits
    assert stored.status_code == 200, stored.text
    assert stored.json()["file"]["sizeInBytes"] == str(CAP)


@pytest.mark.parametrize("length", [CAP + 1, 60_000])
async def test_a_tus_token_minted_without_a_size_cannot_create_past_the_cap(capped: Api, length: int) -> None:
    endpoint, token = await mint_tus(capped, "application/octet-stream", fileName="big.bin")
    refused = await tus_create(capped, endpoint, token, length)
    assert refused.status_code == 413, refused.text
    assert await everything(capped) == []
    created = await tus_create(capped, endpoint, token, CAP)
    assert created.status_code == 201, created.text
    # and no PATCH may send more than the transfer's length
    location = created.headers["Location"]
    over = await capped.http.patch(location, content=bytes(CAP + 1), headers={**OCTETS, "Upload-Offset": "0"})
    assert over.status_code == 400


async def test_tuspy_cannot_send_past_the_cap(data_dir: Path, clock: FakeClock) -> None:
    async with library_api(data_dir, clock, "socket", library_max_file_bytes=CAP) as api:
        endpoint, token = await mint_tus(api, "application/octet-stream", fileName="big.bin")
        meta = {"filename": "big.bin", "contentType": "application/octet-stream", "token": token}
        tus = tus_client.TusClient(endpoint)
        uploader = tus.uploader(file_stream=io.BytesIO(bytes(60_000)), chunk_size=8192, metadata=meta)
        with anyio.fail_after(WAIT), pytest.raises(TusCommunicationError):
            await in_worker(uploader.upload)
        assert await everything(api) == []
        nothing_left(api.library)


async def test_the_cap_travels_with_the_link_to_whichever_process_serves_it(data_dir: Path, clock: FakeClock) -> None:
    """A link minted where the cap is small is served by a process of the same data directory with the default."""
    async with library_api(data_dir, clock, "asgi", library_max_file_bytes=CAP) as minter:
        put_url = await mint_put(minter, "application/octet-stream", fileName="big.bin")
        endpoint, token = await mint_tus(minter, "application/octet-stream", fileName="big.bin")
        async with library_api(data_dir, clock, "asgi") as server:
            refused = await server.http.put(put_url, content=_chunks(bytes(50_000)))
            assert refused.status_code == 400, refused.text
            assert code_of(refused) == "FILE_SIZE_OVER_LIMIT"
            assert (await tus_create(server, endpoint, token, 60_000)).status_code == 413
            assert await everything(server) == []


async def test_the_server_cap_reaches_the_embedded_library(tmp_path: Path) -> None:
    """``MEDIA_MCP_MAX_UPLOAD_BYTES`` binds the library the server starts: a link minted without a size (by the
    adapter, as the MCP tools mint them) takes no more, by PUT or by tus."""
    library = LibrarySettings(data_dir=tmp_path / "data", library_port=0)
    server = ServerSettings(backend="local", max_upload_bytes=CAP)
    backend = backends.choose_backend(server, WixSettings(), library)
    assert isinstance(backend, backends.LocalBackend)
    assert backend.settings.library_max_file_bytes == CAP
    try:
        with anyio.fail_after(WAIT):
            client = await backend.client()
            url = await client.generate_upload_url(
                msg.GenerateFileUploadUrlRequest(mime_type="application/octet-stream", file_name="big.bin")
            )
            minted = await client.generate_resumable_upload_url(
                msg.GenerateFileResumableUploadUrlRequest(mime_type="application/octet-stream", file_name="big.bin")
            )
            assert url.startswith("http://127.0.0.1:")
            async with httpx.AsyncClient(timeout=WAIT) as http:
                refused = await http.put(url, content=bytes(50_000))
                assert refused.status_code == 400, refused.text
                assert code_of(refused) == "FILE_SIZE_OVER_LIMIT"
                meta = f"filename {b64('big.bin')},token {b64(minted.upload_token)}"
                created = await http.post(
                    minted.upload_url, headers={**TUS, "Upload-Length": "60000", "Upload-Metadata": meta}
                )
                assert created.status_code == 413, created.text
    finally:
        with anyio.fail_after(WAIT):
            await backend.aclose()


# --- class 7: an expired link redirects to http(s) only ---------------------------------------


BAD_REDIRECTS = [
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
    "file:///etc/passwd",
    "ftp://example.com/x",
    "//example.com/expired",
    "https:///no-host",
    "http:\\\\example.com",
    " https://example.com/padded",
    "https://example.com/\r\nSet-Cookie: a=b",
    "vbscript:msgbox(1)",
]


@pytest.mark.parametrize("redirect", BAD_REDIRECTS)
async def test_a_download_link_is_not_minted_with_a_non_http_redirect(api: Api, redirect: str) -> None:
    file = await api.upload("cat.png", PNG_16x8, "image/png")
    refused = await api.call(
        "POST",
        "/files/generate-file-download-url",
        json={"fileId": file["id"], "expirationInMinutes": 1, "expirationRedirectUrl": redirect},
    )
    assert refused.status_code == 400, refused.text
    violation = refused.json()["details"]["validationError"]["fieldViolations"][0]
    assert violation["field"] == "expirationRedirectUrl"


async def test_an_expired_link_redirects_to_http_only(api: Api, clock: FakeClock) -> None:
    file = await api.upload("cat.png", PNG_16x8, "image/png")
    fine = await api.ok(
        "POST",
        "/files/generate-file-download-url",
        json={"fileId": file["id"], "expirationInMinutes": 1, "expirationRedirectUrl": "https://example.com/gone"},
    )
    # links whose token carries another target (as an older version could mint) never redirect to it
    old = [
        api.library.signer.mint(AUD_DOWNLOAD, {"obj": file["id"], "red": red, "ak": "src"}, ttl_seconds=60)
        for red in BAD_REDIRECTS
    ]
    clock.advance(120)
    redirected = await api.http.get(fine["downloadUrls"][0]["url"])
    assert redirected.status_code == 302
    assert redirected.headers["location"] == "https://example.com/gone"
    for token in old:
        response = await api.http.get(f"/download/media/{file['id']}", params={"token": token})
        assert response.status_code == 403, response.headers
        assert "location" not in response.headers
