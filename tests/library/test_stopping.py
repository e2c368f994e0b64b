"""Stopping with work in flight: uploads end at once with a JSON answer and their links work again, also through a
sibling when the process holding them died; imports cut short say FAILED."""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from media_mcp.library.tokens import AUD_UPLOAD
from media_mcp.settings import LibrarySettings
from tests.conftest import Api, LoopbackServer

pytestmark = pytest.mark.anyio

WAIT = 30.0
"""Bound on every wait below."""
BODY = b"x" * 4096


async def mint(api: Api) -> str:
    minted = await api.ok(
        "POST",
        "/files/generate-upload-url",
        json={"mimeType": "text/plain", "fileName": "a.txt", "sizeInBytes": str(len(BODY))},
    )
    url: str = minted["uploadUrl"]
    return url


@contextmanager
def asgi(lib: Library) -> Iterator[httpx.AsyncClient]:
    yield httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(lib)), base_url="http://library.test")


def half_a_put(port: int, path: str) -> socket.socket:
    """A PUT that sent its headers and half its body, and sends no more."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    head = f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: {len(BODY)}\r\n\r\n"
    conn.sendall(head.encode() + BODY[: len(BODY) // 2])
    return conn


def answer_of(conn: socket.socket) -> tuple[int, dict[str, object]]:
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


async def test_a_stop_ends_an_upload_in_flight_with_json_and_frees_its_link(settings: LibrarySettings) -> None:
    with Library.open(settings) as lib:
        entered = threading.Event()
        original = lib.transfer

        @contextmanager
        def transfer() -> Iterator[anyio.CancelScope]:
            with original() as scope:
                entered.set()
                yield scope

        lib.transfer = transfer  # type: ignore[method-assign]
        with asgi(lib) as http, LoopbackServer(create_app(lib)) as server:
            url = await mint(Api(http, lib, "asgi"))
            path = url.split("://", 1)[1].split("/", 1)[1]
            conn = half_a_put(server.port, "/" + path)
            with conn:
                assert await anyio.to_thread.run_sync(entered.wait, WAIT), "the upload never started"
                lib.stop_transfers()
                status, body = answer_of(conn)
            assert status == 503
            assert body["details"]["applicationError"]["code"] == "LIBRARY_STOPPING"  # type: ignore[index]
            assert list(lib.data.incoming.iterdir()) == []

    with Library.open(settings) as sibling, asgi(sibling) as http:  # the same link works again
        done = await http.put("/" + path, content=BODY, headers={"Content-Type": "text/plain"})
        assert done.status_code == 200, done.text


HOLDER = """
import sys
from media_mcp.library.service import Library
from media_mcp.settings import LibrarySettings
with Library.open(LibrarySettings(data_dir=sys.argv[1])) as lib:
    assert lib.records.claim(sys.argv[2], float(sys.argv[3]), lib.member, lib.data.alive) is None
    print("claimed", flush=True)
    sys.stdin.read()
"""


async def test_a_link_held_by_a_process_that_died_works_again_through_a_sibling(settings: LibrarySettings) -> None:
    with Library.open(settings) as lib, asgi(lib) as http:
        url = await mint(Api(http, lib, "asgi"))
        claims = lib.signer.check(url.rsplit("/", 1)[1], AUD_UPLOAD)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(settings.data_dir), str(claims["jti"]), str(claims["exp"])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            said: queue.Queue[bytes] = queue.Queue()
            assert holder.stdout is not None
            threading.Thread(target=lambda: said.put(holder.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
            assert said.get(timeout=WAIT) == b"claimed\n"
            busy = await http.put(url, content=BODY, headers={"Content-Type": "text/plain"})
            assert busy.status_code == 409  # its holder is alive: the upload may still finish
        finally:
            holder.kill()
            holder.wait(timeout=WAIT)
            for pipe in (holder.stdin, holder.stdout):
                if pipe is not None:
                    pipe.close()
        done = await http.put(url, content=BODY, headers={"Content-Type": "text/plain"})
        assert done.status_code == 200, done.text
        assert list(lib.data.members.iterdir()) == [lib.data.members / f"{lib.member}.lock"]


def test_members_lock_files_are_removed_on_close(settings: LibrarySettings, data_dir: Path) -> None:
    with Library.open(settings) as lib:
        assert (data_dir / "members" / f"{lib.member}.lock").is_file()
        assert lib.data.alive(lib.member)
    assert list((data_dir / "members").iterdir()) == []
    assert not lib.data.alive(lib.member)
