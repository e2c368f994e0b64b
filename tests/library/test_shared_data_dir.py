"""One data directory opened by several processes at once (two assistants on one laptop).

Each opens the library itself; none may take away what another has in flight (an upload's temporary file and its
claimed link, a pending import), and what a crash left waits for a process that starts alone. The library answers
a challenge with a proof that only a process of its data directory can give.
"""

from __future__ import annotations

import queue
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread
import httpx
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from media_mcp.library import proof
from media_mcp.library.app import create_app
from media_mcp.library.service import IMPORTER_GONE, STALE_IMPORT_MARGIN, Library
from media_mcp.settings import LibrarySettings
from tests.conftest import Api, FakeClock, LoopbackServer, PNG_16x8

pytestmark = pytest.mark.anyio

WAIT = 30.0


def in_process(lib: Library) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(lib)), base_url="http://library.test")


async def get_file(api: Api, file_id: str) -> dict[str, object]:
    file: dict[str, object] = (await api.ok("GET", "/files/get-file-by-id", params={"fileId": file_id}))["file"]
    return file


async def test_two_opens_share_files_keys_and_links(settings: LibrarySettings, clock: FakeClock) -> None:
    with Library.open(settings, clock=clock) as first, Library.open(settings, clock=clock) as second:
        assert (first.api_key, first.site_id) == (second.api_key, second.site_id)
        async with in_process(first) as one, in_process(second) as two:
            a, b = Api(one, first, "asgi"), Api(two, second, "asgi")
            cat = await a.upload("cat.png", PNG_16x8, "image/png")
            folder = await b.folder("From the other one")
            assert (await get_file(b, str(cat["id"])))["displayName"] == "cat.png"
            assert (await a.ok("GET", f"/folders/{folder}"))["folder"]["displayName"] == "From the other one"
            # a link minted by one is served by the other: the signing key belongs to the directory
            minted = await a.ok("POST", "/files/generate-file-download-url", json={"fileId": cat["id"]})
            got = await two.get(minted["downloadUrls"][0]["url"])
            assert got.status_code == 200 and got.content == PNG_16x8


class FirstChunkSeen:
    """Wraps an app: ``seen`` is set once a ``PUT`` asks for its body's second chunk (the first is being stored)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "PUT":
            await self.app(scope, receive, send)
            return
        asked = 0

        async def counted() -> Message:
            nonlocal asked
            asked += 1
            if asked == 2:
                self.seen.set()
            return await receive()

        await self.app(scope, counted, send)


async def test_a_sibling_starting_mid_upload_neither_breaks_it_nor_frees_its_link(
    settings: LibrarySettings, clock: FakeClock
) -> None:
    go = anyio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield PNG_16x8[:20]
        await go.wait()
        yield PNG_16x8[20:]

    with Library.open(settings, clock=clock) as first:
        app = FirstChunkSeen(create_app(first))
        with LoopbackServer(app) as server, anyio.fail_after(WAIT):
            async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http, anyio.create_task_group() as tg:
                api = Api(http, first, "socket")
                minted = await api.ok("POST", "/files/generate-upload-url", json={"mimeType": "image/png"})
                url = minted["uploadUrl"]
                done: list[httpx.Response] = []
                finished = anyio.Event()

                async def upload() -> None:
                    done.append(await http.put(url, params={"filename": "cat.png"}, content=body()))
                    finished.set()

                tg.start_soon(upload)
                assert await anyio.to_thread.run_sync(app.seen.wait, WAIT)
                # the upload has claimed its link and streams into incoming/ while another process opens the directory
                with Library.open(settings, clock=clock) as second:
                    async with in_process(second) as two:
                        again = await two.put(url, params={"filename": "cat.png"}, content=PNG_16x8)
                        assert again.status_code == 409, again.text
                        assert again.json()["details"]["applicationError"]["code"] == "UPLOAD_IN_PROGRESS"
                        go.set()
                        await finished.wait()
                        assert done[0].status_code == 200, done[0].text
                        stored = await get_file(Api(two, second, "asgi"), done[0].json()["file"]["id"])
                        assert stored["sizeInBytes"] == str(len(PNG_16x8))


def test_what_a_crash_left_waits_for_a_process_that_starts_alone(settings: LibrarySettings, clock: FakeClock) -> None:
    with Library.open(settings, clock=clock) as first:
        leftover = first.data.incoming / "left-by-a-crash"
        leftover.write_bytes(b"partial")
        with Library.open(settings, clock=clock):
            assert leftover.exists()  # it may be the first one's upload in flight
        assert leftover.exists()
    with Library.open(settings, clock=clock):
        assert not leftover.exists()


async def test_half_written_key_files_go_at_a_start_alone_and_nothing_else(
    settings: LibrarySettings, clock: FakeClock
) -> None:
    with Library.open(settings, clock=clock) as first:
        root = first.data.root
        leftovers = [root / f".{name}.{secrets.token_hex(8)}.tmp" for name in ("api_key", "signing_key", "proof_key")]
        theirs = [root / ".api_key.notes.tmp", root / "api_key.0011.tmp", root / ".my_key.0011.tmp"]
        for path in [*leftovers, *theirs]:
            path.write_bytes(b"half a key")
        with Library.open(settings, clock=clock) as second:
            assert all(p.exists() for p in leftovers)  # the first one may be writing a key at this moment
            async with in_process(second) as http:
                assert (await Api(http, second, "asgi").call("GET", "/files")).status_code == 200
        assert all(p.exists() for p in leftovers)
    with Library.open(settings, clock=clock) as alone:
        assert [p.name for p in leftovers if p.exists()] == []
        assert [p.name for p in theirs if not p.exists()] == []  # not the library's: kept
        assert (root / "api_key").read_text() == alone.api_key


async def test_a_sibling_fails_only_imports_past_their_time_limit(tmp_path: Path, clock: FakeClock) -> None:
    settings = LibrarySettings(data_dir=tmp_path / "data", library_import_timeout_seconds=30)
    release = threading.Event()

    async def stalled_web(request: httpx.Request) -> httpx.Response:
        await anyio.to_thread.run_sync(release.wait, WAIT)
        return httpx.Response(200, content=PNG_16x8, headers={"Content-Type": "image/png"})

    async def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    with Library.open(settings, clock=clock) as first:
        app = create_app(first, import_transport=httpx.MockTransport(stalled_web), resolver=public)
        with LoopbackServer(app) as server, anyio.fail_after(WAIT):
            try:
                async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
                    api = Api(http, first, "socket")
                    started = await api.ok("POST", "/files/import", json={"url": "http://public.example/pic.png"})
                    file_id = started["file"]["id"]
                    with Library.open(settings, clock=clock):  # the import is running in the first process
                        pass
                    assert (await get_file(api, file_id))["operationStatus"] == "PENDING"
                    clock.advance(settings.library_import_timeout_seconds + STALE_IMPORT_MARGIN + 1)
                    with Library.open(settings, clock=clock):  # now it cannot be running anywhere
                        pass
                    assert (await get_file(api, file_id))["operationStatus"] == "FAILED"
            finally:
                release.set()


IMPORTER = """
import sys
import anyio, anyio.to_thread, httpx
from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from media_mcp.settings import LibrarySettings

async def never_answers(request):
    await anyio.Event().wait()

async def public(host, port):
    return ["93.184.216.34"]

async def main():
    with Library.open(LibrarySettings(data_dir=sys.argv[1])) as lib:
        app = create_app(lib, import_transport=httpx.MockTransport(never_answers), resolver=public)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://library.test") as http:
            answer = await http.post(
                "/site-media/v1/files/import",
                json={"url": "http://public.example/pic.png"},
                headers={"Authorization": lib.api_key},
            )
            print(answer.json()["file"]["id"], flush=True)
            await anyio.to_thread.run_sync(sys.stdin.read)

anyio.run(main)
"""


async def search_status(api: Api, file_id: str) -> object:
    found = await api.ok("POST", "/files/search", json={"search": "pic"})
    return {f["id"]: f["operationStatus"] for f in found["files"]}.get(file_id)


async def test_an_import_whose_process_was_killed_fails_at_the_next_read_by_a_sibling(
    settings: LibrarySettings,
) -> None:
    """Well within the import's time limit (both processes read the system clock), the owner's death is enough."""
    with Library.open(settings) as sibling:
        async with in_process(sibling) as http:
            api = Api(http, sibling, "asgi")
            importer = subprocess.Popen(
                [sys.executable, "-c", IMPORTER, str(settings.data_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            try:
                said: queue.Queue[bytes] = queue.Queue()
                out = importer.stdout
                assert out is not None
                threading.Thread(target=lambda: said.put(out.readline()), daemon=True).start()
                file_id = said.get(timeout=WAIT).decode().strip()
                assert file_id, "the importing process said no file id"
                # its process is alive and fetching: the import may still finish
                assert (await get_file(api, file_id))["operationStatus"] == "PENDING"
                assert await search_status(api, file_id) == "PENDING"
                importer.kill()
                assert importer.wait(timeout=WAIT) == -signal.SIGKILL
            finally:
                if importer.poll() is None:
                    importer.kill()
                    importer.wait(timeout=WAIT)
                for pipe in (importer.stdin, importer.stdout):
                    if pipe is not None:
                        pipe.close()
            assert await search_status(api, file_id) == "FAILED"  # a listing notices it too
            failed = await get_file(api, file_id)
            assert (failed["operationStatus"], failed["failureReason"]) == ("FAILED", IMPORTER_GONE)
            assert list(sibling.data.members.iterdir()) == [sibling.data.members / f"{sibling.member}.lock"]


async def test_a_running_sibling_fails_an_import_past_its_time_limit_and_its_owner_keeps_nothing(
    tmp_path: Path, clock: FakeClock
) -> None:
    settings = LibrarySettings(data_dir=tmp_path / "data", library_import_timeout_seconds=30)
    fetching, release = anyio.Event(), anyio.Event()

    async def stalled_web(request: httpx.Request) -> httpx.Response:
        fetching.set()
        await release.wait()
        return httpx.Response(200, content=PNG_16x8, headers={"Content-Type": "image/png"})

    async def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    with Library.open(settings, clock=clock) as owner, Library.open(settings, clock=clock) as sibling:
        app = create_app(owner, import_transport=httpx.MockTransport(stalled_web), resolver=public)
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://library.test") as one,
            in_process(sibling) as two,
        ):
            a, b = Api(one, owner, "asgi"), Api(two, sibling, "asgi")
            with anyio.fail_after(WAIT):
                started = await a.ok("POST", "/files/import", json={"url": "http://public.example/pic.png"})
                file_id = started["file"]["id"]
                await fetching.wait()
                clock.advance(settings.library_import_timeout_seconds + STALE_IMPORT_MARGIN - 1)
                assert (await get_file(b, file_id))["operationStatus"] == "PENDING"  # within the limit and margin
                clock.advance(2)
                failed = await get_file(b, file_id)
                assert failed["operationStatus"] == "FAILED"
                assert "did not finish within its time limit (30 s)" in str(failed["failureReason"])
                release.set()  # the owner's fetch ends after all: too late, the file stays FAILED
                await owner.settle()
            again = await get_file(a, file_id)
            assert (again["operationStatus"], again["failureReason"]) == ("FAILED", failed["failureReason"])
            assert [p for p in owner.data.blobs.rglob("*") if p.is_file()] == []


async def test_the_proof_holds_for_this_directory_and_address_only(
    library: Library, tmp_path: Path, clock: FakeClock
) -> None:
    key = library.data.proof_key()
    with LoopbackServer(create_app(library)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            nonce = secrets.token_urlsafe(32)
            reply = await http.get(proof.PROOF_PATH, params={"nonce": nonce})
            assert reply.status_code == 200 and reply.json()["service"] == "media-mcp-library"
            answer = reply.json()["proof"]
            assert proof.check(key, nonce, "127.0.0.1", server.port, answer)
            assert not proof.check(key, nonce, "127.0.0.1", server.port + 1, answer)  # relayed from another port
            assert not proof.check(key, nonce, "::1", server.port, answer)
            assert not proof.check(key, secrets.token_urlsafe(32), "127.0.0.1", server.port, answer)
            with Library.open(LibrarySettings(data_dir=tmp_path / "other"), clock=clock) as other:
                assert not proof.check(other.data.proof_key(), nonce, "127.0.0.1", server.port, answer)
            for bad in ("", "short", "x" * 129, "not/url-safe" * 3):
                assert (await http.get(proof.PROOF_PATH, params={"nonce": bad})).status_code == 400
