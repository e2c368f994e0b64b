"""Import from URL: the fetch, its outcome, and the rules that keep it away from private addresses."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from media_mcp.library.app import create_app
from media_mcp.library.importer import Resolver
from media_mcp.library.service import Library
from media_mcp.settings import LibrarySettings
from tests.conftest import Api, FakeClock, LoopbackServer, PNG_16x8

pytestmark = pytest.mark.anyio

MAX_BYTES = 4096
BIG = b"\x00big" * 5000  # 20000 bytes, past MAX_BYTES
TEXT = b"plain words, nothing more\n"


# --- a source server on loopback ---------------------------------------------------------------


async def _png(request: Request) -> Response:
    return Response(PNG_16x8, media_type="image/png")


async def _untyped(request: Request) -> Response:
    return Response(PNG_16x8, media_type="application/octet-stream")


async def _text(request: Request) -> Response:
    return Response(TEXT, media_type="text/plain")


async def _hop(request: Request) -> Response:
    return RedirectResponse("/pic.png", status_code=302)


async def _missing(request: Request) -> Response:
    return Response(b"no such thing", status_code=404)


async def _big(request: Request) -> Response:
    return Response(BIG, media_type="application/octet-stream")


async def _empty(request: Request) -> Response:
    return Response(b"", media_type="image/png")


SOURCE = Starlette(
    routes=[
        Route("/pic.png", _png),
        Route("/untyped", _untyped),
        Route("/notes.txt", _text),
        Route("/hop", _hop),
        Route("/missing", _missing),
        Route("/big", _big),
        Route("/empty.png", _empty),
    ]
)


@pytest.fixture(scope="module")
def source() -> Iterator[LoopbackServer]:
    with LoopbackServer(SOURCE) as server:
        yield server


@pytest.fixture
def open_library(tmp_path: Path, clock: FakeClock) -> Iterator[Library]:
    """A library allowed to import from loopback (where the test source server lives)."""
    settings = LibrarySettings(
        data_dir=tmp_path / "open", library_allow_private_imports=True, library_max_file_bytes=MAX_BYTES
    )
    with Library.open(settings, clock=clock) as lib:
        yield lib


@asynccontextmanager
async def asgi(
    lib: Library, transport: httpx.AsyncBaseTransport | None = None, resolver: Resolver | None = None
) -> AsyncIterator[Api]:
    app = create_app(lib, import_transport=transport, resolver=resolver)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://library.test") as http:
        yield Api(http, lib, "asgi")


@pytest.fixture
async def open_api(open_library: Library) -> AsyncIterator[Api]:
    async with asgi(open_library) as api:
        yield api


async def start_import(api: Api, url: str, **fields: Any) -> dict[str, Any]:
    body = await api.ok("POST", "/files/import", json={"url": url, **fields})
    file: dict[str, Any] = body["file"]
    assert file["operationStatus"] == "PENDING"
    assert file["hash"] == ""
    assert "media" not in file
    return file


async def get_file(api: Api, file_id: str) -> dict[str, Any]:
    """The file once the imports started so far have settled (in-process, the jobs run on this loop)."""
    if api.kind == "asgi":
        with anyio.fail_after(20):
            await api.library.settle()
    body = await api.ok("GET", "/files/get-file-by-id", params={"fileId": file_id})
    file: dict[str, Any] = body["file"]
    return file


async def download(api: Api, file_id: str) -> httpx.Response:
    minted = await api.ok("POST", "/files/generate-file-download-url", json={"fileId": file_id})
    return await api.http.get(minted["downloadUrls"][0]["url"])


def blob_files(lib: Library) -> list[Path]:
    return [p for p in lib.data.blobs.rglob("*") if p.is_file()]


def file_count(lib: Library) -> int:
    with lib.db.read() as conn:
        count: int = conn.execute("SELECT count(*) FROM files").fetchone()[0]
    return count


# --- imports that work ------------------------------------------------------------------------


async def test_import_stores_the_bytes_and_describes_them(open_api: Api, source: LoopbackServer) -> None:
    url = f"{source.url}/pic.png"
    started = await start_import(open_api, url, labels=["from-web"], private=True)
    assert started["displayName"] == "pic.png"
    assert started["sourceUrl"] == url

    file = await get_file(open_api, started["id"])
    assert file["operationStatus"] == "READY"
    assert file["mediaType"] == "IMAGE"
    assert file["hash"] == hashlib.md5(PNG_16x8, usedforsecurity=False).hexdigest()
    assert int(file["sizeInBytes"]) == len(PNG_16x8)
    assert file["sourceUrl"] == url
    assert file["labels"] == ["from-web"]
    assert file["private"] is True
    image = file["media"]["image"]["image"]
    assert (image["width"], image["height"]) == (16, 8)

    got = await download(open_api, file["id"])
    assert got.status_code == 200
    assert got.content == PNG_16x8
    assert got.headers["content-type"].startswith("image/png")
    assert len(blob_files(open_api.library)) == 3  # the bytes, and the preview and thumbnail processing made


async def test_media_type_comes_from_the_content(open_api: Api, source: LoopbackServer) -> None:
    started = await start_import(open_api, f"{source.url}/untyped", displayName="no extension")
    assert started["displayName"] == "no extension"
    file = await get_file(open_api, started["id"])
    assert file["operationStatus"] == "READY"
    assert file["mediaType"] == "IMAGE"
    got = await download(open_api, file["id"])
    assert got.content == PNG_16x8
    assert got.headers["content-type"].startswith("image/png")


async def test_import_into_a_folder_with_a_given_mime_type(open_api: Api, source: LoopbackServer) -> None:
    folder = await open_api.folder("imports")
    started = await start_import(
        open_api, f"{source.url}/notes.txt", parentFolderId=folder, mimeType="text/plain", displayName="n.txt"
    )
    assert started["parentFolderId"] == folder
    file = await get_file(open_api, started["id"])
    assert file["operationStatus"] == "READY"
    assert file["mediaType"] == "DOCUMENT"
    assert file["parentFolderId"] == folder
    got = await download(open_api, file["id"])
    assert got.content == TEXT


async def test_redirect_is_followed(open_api: Api, source: LoopbackServer) -> None:
    started = await start_import(open_api, f"{source.url}/hop", displayName="hopped.png")
    file = await get_file(open_api, started["id"])
    assert file["operationStatus"] == "READY"
    assert file["sourceUrl"] == f"{source.url}/hop"
    assert (await download(open_api, file["id"])).content == PNG_16x8


@pytest.mark.parametrize("path", ["/missing", "/empty.png"])
async def test_source_error_or_empty_body_fails_the_import(open_api: Api, source: LoopbackServer, path: str) -> None:
    started = await start_import(open_api, f"{source.url}{path}")
    file = await get_file(open_api, started["id"])
    assert file["operationStatus"] == "FAILED"
    assert (
        file["failureReason"]
        == {  # the library's own field: Wix's descriptor has no reason
            "/missing": "the source answered HTTP 404",
            "/empty.png": "the URL answered an empty body",
        }[path]
    )
    assert file["hash"] == ""
    assert blob_files(open_api.library) == []
    assert list(open_api.library.data.incoming.iterdir()) == []
    got = await download(open_api, file["id"])
    assert got.status_code == 404


async def test_oversized_body_fails_and_leaves_no_blob(open_api: Api, source: LoopbackServer) -> None:
    assert len(BIG) > open_api.library.settings.library_max_file_bytes
    started = await start_import(open_api, f"{source.url}/big", displayName="big.bin")
    file = await get_file(open_api, started["id"])
    assert file["operationStatus"] == "FAILED"
    assert blob_files(open_api.library) == []
    assert list(open_api.library.data.incoming.iterdir()) == []


async def test_import_over_a_socket_settles(open_library: Library, source: LoopbackServer) -> None:
    """Served for real, the import runs after the answer: poll (boundedly) until it settles."""
    with LoopbackServer(create_app(open_library)) as served:
        async with httpx.AsyncClient(base_url=served.url, timeout=20) as http:
            api = Api(http, open_library, "socket")
            started = await start_import(api, f"{source.url}/pic.png")
            status = "PENDING"
            with anyio.fail_after(20):
                while status == "PENDING":
                    status = (await get_file(api, started["id"]))["operationStatus"]
            assert status == "READY"
            assert (await download(api, started["id"])).content == PNG_16x8


# --- refused up front -----------------------------------------------------------------------


async def assert_refused(api: Api, url: str, words: tuple[str, ...]) -> None:
    response = await api.call("POST", "/files/import", json={"url": url})
    assert response.status_code == 400, response.text
    body = response.json()
    message = body["message"].lower()
    assert any(w in message for w in words), message
    violation = body["details"]["validationError"]["fieldViolations"][0]
    assert violation["field"] == "url"
    searched = await api.ok("POST", "/files/search", json={})
    assert searched["files"] == []
    assert file_count(api.library) == 0
    assert blob_files(api.library) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/pic.png",
        "http://localhost/",
        "http://10.0.0.1/",
        "http://192.168.1.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
    ],
)
async def test_private_addresses_are_refused(library: Library, source: LoopbackServer, url: str) -> None:
    """The default settings and the system resolver; the transport only records, so nothing is ever reached."""
    assert library.settings.library_allow_private_imports is False
    web = FakeWeb()
    async with asgi(library, httpx.MockTransport(web)) as api:
        await assert_refused(api, url.format(port=source.port), ("non-public",))
    assert web.seen == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://ftp.example.com/x.png", "gopher://example.com/1"])
async def test_other_schemes_are_refused(library: Library, url: str) -> None:
    web = FakeWeb()
    async with asgi(library, httpx.MockTransport(web)) as api:
        await assert_refused(api, url, ("only http and https",))
    assert web.seen == []


async def test_loopback_source_is_refused_even_when_it_would_answer(asgi_api: Api, source: LoopbackServer) -> None:
    """The same source that imports fine with private imports allowed is refused by default."""
    await assert_refused(asgi_api, f"{source.url}/pic.png", ("non-public",))


# --- a fake internet: MockTransport plus a fake resolver (no connection is ever made) -----------

PUBLIC_IP = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"
NAMES = {
    "public.example": [PUBLIC_IP],
    "v6.example": [PUBLIC_V6],
    "internal.example": ["10.1.2.3"],
    "mixed.example": [PUBLIC_IP, "127.0.0.1"],
    "nothing.example": [],
}


async def fake_resolver(host: str, port: int) -> list[str]:
    if host in NAMES:
        return list(NAMES[host])
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
    return [host]


class FakeWeb:
    """Answers as the public site would and records every request it was asked to send."""

    def __init__(self, redirect_to: str | None = None) -> None:
        self.redirect_to = redirect_to
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.redirect_to is not None and request.url.path == "/start":
            return httpx.Response(302, headers={"Location": self.redirect_to})
        return httpx.Response(200, content=PNG_16x8, headers={"Content-Type": "image/png"})

    @property
    def hosts(self) -> list[str]:
        return [r.url.host for r in self.seen]


async def test_connection_is_pinned_to_the_checked_address(library: Library) -> None:
    web = FakeWeb()
    async with asgi(library, httpx.MockTransport(web), fake_resolver) as api:
        started = await start_import(api, "http://public.example:8080/a/pic.png?x=1")
        assert (await get_file(api, started["id"]))["operationStatus"] == "READY"
    assert len(web.seen) == 1
    sent = web.seen[0]
    assert sent.url.host == PUBLIC_IP
    assert sent.url.port == 8080
    assert sent.url.raw_path == b"/a/pic.png?x=1"
    assert sent.headers["host"] == "public.example:8080"


async def test_https_is_pinned_with_the_original_name_for_tls(library: Library) -> None:
    web = FakeWeb()
    async with asgi(library, httpx.MockTransport(web), fake_resolver) as api:
        started = await start_import(api, "https://public.example/pic.png")
        assert (await get_file(api, started["id"]))["operationStatus"] == "READY"
    sent = web.seen[0]
    assert sent.url.scheme == "https"
    assert sent.url.host == PUBLIC_IP
    assert sent.headers["host"] == "public.example"
    assert sent.extensions.get("sni_hostname") == "public.example"


async def test_ipv6_pinning(library: Library) -> None:
    web = FakeWeb()
    async with asgi(library, httpx.MockTransport(web), fake_resolver) as api:
        started = await start_import(api, "http://v6.example/pic.png")
        assert (await get_file(api, started["id"]))["operationStatus"] == "READY"
    assert web.hosts == [PUBLIC_V6]
    assert web.seen[0].headers["host"] == "v6.example"


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam",
        "http://127.0.0.1:9/",
        "http://internal.example/secret",
        "http://[::1]/",
        "file:///etc/passwd",
    ],
)
async def test_redirect_to_a_private_address_fails_without_a_request(library: Library, target: str) -> None:
    web = FakeWeb(redirect_to=target)
    async with asgi(library, httpx.MockTransport(web), fake_resolver) as api:
        started = await start_import(api, "http://public.example/start")
        file = await get_file(api, started["id"])
    assert file["operationStatus"] == "FAILED"
    reason = file["failureReason"]  # the check that refused it: a non-public address, or a scheme not imported
    assert "non-public address" in reason or "can be imported" in reason or "host" in reason, reason
    assert web.hosts == [PUBLIC_IP]  # the first hop only: the private target was never asked
    assert blob_files(library) == []


async def test_redirect_to_another_public_name_is_followed(library: Library) -> None:
    web = FakeWeb(redirect_to="http://v6.example/pic.png")
    async with asgi(library, httpx.MockTransport(web), fake_resolver) as api:
        started = await start_import(api, "http://public.example/start")
        file = await get_file(api, started["id"])
    assert file["operationStatus"] == "READY"
    assert web.hosts == [PUBLIC_IP, PUBLIC_V6]
    assert [r.headers["host"] for r in web.seen] == ["public.example", "v6.example"]


async def test_endless_redirects_fail(library: Library) -> None:
    web = FakeWeb(redirect_to="http://public.example/start")
    async with asgi(library, httpx.MockTransport(web), fake_resolver) as api:
        started = await start_import(api, "http://public.example/start")
        file = await get_file(api, started["id"])
    assert file["operationStatus"] == "FAILED"
    assert 1 < len(web.seen) <= 10


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://no-such-host.example/x.png", ("cannot resolve",)),
        ("http://nothing.example/x.png", ("cannot resolve",)),
        ("http://internal.example/x.png", ("non-public",)),
        ("http://mixed.example/x.png", ("non-public",)),
    ],
)
async def test_names_that_do_not_resolve_to_public_addresses_are_refused(
    library: Library, url: str, words: tuple[str, ...]
) -> None:
    web = FakeWeb()
    async with asgi(library, httpx.MockTransport(web), fake_resolver) as api:
        await assert_refused(api, url, words)
    assert web.seen == []


async def test_oversized_body_from_the_web_fails_and_leaves_no_blob(tmp_path: Path, clock: FakeClock) -> None:
    settings = LibrarySettings(data_dir=tmp_path / "small", library_max_file_bytes=len(PNG_16x8) - 1)
    with Library.open(settings, clock=clock) as lib:
        web = FakeWeb()
        async with asgi(lib, httpx.MockTransport(web), fake_resolver) as api:
            started = await start_import(api, "http://public.example/pic.png")
            file = await get_file(api, started["id"])
        assert file["operationStatus"] == "FAILED"
        assert len(web.seen) == 1
        assert blob_files(lib) == []
        assert list(lib.data.incoming.iterdir()) == []


async def test_an_import_answers_before_its_fetch_ends_in_process(library: Library) -> None:
    """In-process (httpx's ASGI transport) too, the answer comes at once and the library finishes the fetch."""
    fetching, release = anyio.Event(), anyio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        fetching.set()
        await release.wait()
        return httpx.Response(200, content=PNG_16x8, headers={"Content-Type": "image/png"})

    async with asgi(library, httpx.MockTransport(slow), fake_resolver) as api:
        with anyio.fail_after(30):
            started = await start_import(api, "http://public.example/pic.png")  # answered while the fetch waits
            await fetching.wait()
            assert library.jobs
            release.set()
            assert (await get_file(api, started["id"]))["operationStatus"] == "READY"


async def test_an_import_stopped_with_its_loop_ends_failed(library: Library) -> None:
    """An import the library cannot finish (its event loop is stopping) is marked FAILED, never left PENDING."""
    fetching = anyio.Event()

    async def stalls(request: httpx.Request) -> httpx.Response:
        fetching.set()
        await anyio.Event().wait()  # never answers
        raise AssertionError("unreachable")

    async with asgi(library, httpx.MockTransport(stalls), fake_resolver) as api:
        with anyio.fail_after(30):
            started = await start_import(api, "http://public.example/pic.png")
            await fetching.wait()
            for job in list(library.jobs):
                job.cancel()
            stopped = await get_file(api, started["id"])
            assert (stopped["operationStatus"], stopped["failureReason"]) == (
                "FAILED",
                "the library stopped before the import finished",
            )


# --- headers, names and types: what an import sends, accepts and learns --------------------------


def code_of(response: httpx.Response) -> str:
    details = response.json()["details"]
    if "applicationError" in details:
        code: str = details["applicationError"]["code"]
    else:
        code = details["validationError"]["fieldViolations"][0]["ruleName"]
    return code


async def no_lookups(host: str, port: int) -> list[str]:
    raise AssertionError(f"no name should be resolved, asked for {host!r}")


async def loopback_2(host: str, port: int) -> list[str]:
    return ["127.0.0.2"]


def private_imports_allowed(tmp_path: Path) -> LibrarySettings:
    return LibrarySettings(data_dir=tmp_path / "d", library_allow_private_imports=True)


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

    with Library.open(private_imports_allowed(tmp_path), clock=clock) as lib:
        async with asgi(lib, httpx.MockTransport(handler), resolver) as api:
            sent = {
                "Authorization": "Bearer s3cret",
                "Cookie": "session=1",
                "Proxy-Authorization": "Basic p",
                "X-Tag": "t",
            }
            started = await start_import(api, "http://cdn.test/a", urlHeaders=sent)
            assert (await get_file(api, started["id"]))["operationStatus"] == "READY"
    creds = ("Bearer s3cret", "session=1", "Basic p", "t")
    assert seen == [("cdn.test", *creds), ("cdn.test", *creds), ("elsewhere.test", None, None, None, "t")]


def blocked(address: str) -> bool:
    from media_mcp.library.importer import _blocked

    return _blocked(address)


@pytest.mark.parametrize(
    "address",
    ["64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "2002:7f00:1::", "::a9fe:a9fe", "::a00:1"],
)
def test_ipv6_forms_of_private_ipv4_are_blocked(address: str) -> None:
    assert blocked(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "64:ff9b::5db8:d822", "2606:2800:220:1::248"])
def test_public_addresses_are_not_blocked(address: str) -> None:
    assert not blocked(address)


async def test_a_host_name_idna_cannot_decode_is_a_400(library: Library) -> None:
    async with asgi(library, resolver=no_lookups) as api:
        for url in ("http://xn--/", "http://xn--a/x.png"):
            response = await api.call("POST", "/files/import", json={"url": url})
            assert response.status_code == 400, (url, response.text)
            assert code_of(response) == "IMPORT_URL_REFUSED"


@pytest.mark.parametrize("mime", ["text/plain\r\nSet-Cookie: a=b", "text/plain\n", "not a mime", "text/plain; x=1"])
async def test_import_and_upload_refuse_a_malformed_mime_type(library: Library, mime: str) -> None:
    async with asgi(library, resolver=no_lookups) as api:
        imported = await api.call("POST", "/files/import", json={"url": "http://cdn.test/a.txt", "mimeType": mime})
        assert imported.status_code == 400
        assert code_of(imported) == "UNSUPPORTED_FILE_FORMAT"
        minted = await api.call("POST", "/files/generate-upload-url", json={"mimeType": mime, "fileName": "a.txt"})
        assert minted.status_code == 400
        assert code_of(minted) == "UNSUPPORTED_FILE_FORMAT"


async def test_a_malformed_remote_content_type_is_ignored(tmp_path: Path, clock: FakeClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"plain words", headers={"content-type": "evil value/with spaces"})

    with Library.open(private_imports_allowed(tmp_path), clock=clock) as lib:
        async with asgi(lib, httpx.MockTransport(handler), loopback_2) as api:
            started = await start_import(api, "http://cdn.test/notes.txt")
            assert (await get_file(api, started["id"]))["operationStatus"] == "READY"
            stored = lib.catalog.get_file(started["id"])
            assert stored is not None
            assert stored.mime_type == "text/plain"


async def test_search_finds_an_import_by_its_detected_type(tmp_path: Path, clock: FakeClock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=PNG_16x8, headers={"content-type": "image/png"})

    with Library.open(private_imports_allowed(tmp_path), clock=clock) as lib:
        async with asgi(lib, httpx.MockTransport(handler), loopback_2) as api:
            started = await start_import(api, "http://cdn.test/download?id=5", displayName="holiday")
            assert (await get_file(api, started["id"]))["operationStatus"] == "READY"
            for text in ("png", "image/png", "holiday"):
                found = await api.ok("POST", "/files/search", json={"search": text})
                assert [f["id"] for f in found["files"]] == [started["id"]], text
            assert (await api.ok("POST", "/files/search", json={"search": "octet"}))["files"] == []


@pytest.mark.parametrize(
    ("body", "remote_type", "name"),
    [
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "image/svg+xml", "pic.png"),
        (b"\x0c\x0c  <html><script>alert(1)</script></html>", "text/html", "notes.txt"),
        (b'<?xml version="1.0"?><x:y xmlns:x="urn:x"/>', "application/xml", "pic.png"),
        (b"<!DOCTYPE html><p>hi</p>", "image/png", "no-extension"),
    ],
)
async def test_an_import_whose_content_is_markup_fails_unless_markup_was_asked_for(
    library: Library, body: bytes, remote_type: str, name: str
) -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": remote_type})

    async with asgi(library, httpx.MockTransport(serve), fake_resolver) as api:
        started = await start_import(api, "http://public.example/file", displayName=name)
        file = await get_file(api, started["id"])
    assert file["operationStatus"] == "FAILED"
    assert blob_files(library) == [] and list(library.data.incoming.iterdir()) == []
