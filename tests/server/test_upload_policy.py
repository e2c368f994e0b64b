"""The upload type policy at the MCP surface (issue 11, class 3): by content, and no wildcard admits markup.

The guard sniffs what ``upload_file`` sends past any leading whitespace, NULs or BOMs; patterns such as ``model/*``
or ``text/*`` never admit HTML, SVG, XML or scripts; and a link it mints brings only what it was minted for,
because the library decides again on the bytes when it stores them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from media_mcp.wix import messages as msg
from media_mcp.wix import models as m
from media_mcp.wix.client import WixMediaClient
from tests.conftest import PNG_16x8
from tests.server.conftest import MakeServer

pytestmark = pytest.mark.anyio

WAIT = 20  # seconds: the bound on every test here

SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


def refusal(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return text_of(result)


async def live_ids(wix: WixMediaClient) -> set[str]:
    return {file.id async for file in wix.iter_files(msg.SearchFilesRequest(root_folder=m.RootFolder.MEDIA_ROOT))}


@pytest.mark.parametrize(
    "mime",
    ["model/vnd.collada+xml", "model/x3d+xml", "video/x+xml", "audio/x+xml", "font/svg+xml", "video/xml",
     "model/xml", "image/svg+xml", "text/xml", "application/xhtml+xml", "application/vnd.ms-x+xml",
     "video/mp4; x=y", "video/mp4,text/html", "video/mp4\ntext/html"],
)  # fmt: skip
async def test_no_wildcard_admits_markup_or_a_malformed_type(client: Client, wix: WixMediaClient, mime: str) -> None:
    with anyio.fail_after(WAIT):
        args = {"file_name": "thing.bin", "mime_type": mime, "size_bytes": 10}
        assert "not allowed" in refusal(await client.call_tool("generate_upload_url", args))
        imported = {"url": "https://x.test/a", "mime_type": mime}
        assert "not allowed" in refusal(await client.call_tool("import_file", imported))
    assert await live_ids(wix) == set()


async def test_markup_is_admitted_only_by_its_exact_name(make_server: MakeServer, mode: str) -> None:
    with anyio.fail_after(WAIT):
        async with Client(make_server(upload_allowed_types="text/*,image/svg+xml,model/*"), mode=mode) as client:
            for mime in ("text/html", "text/xml", "text/javascript", "model/vnd.collada+xml"):
                args = {"file_name": "thing", "mime_type": mime}
                assert "not allowed" in refusal(await client.call_tool("generate_upload_url", args))
            for mime, name in (("image/svg+xml", "logo.svg"), ("text/plain", "a.txt"), ("model/obj", "chair")):
                assert data(await client.call_tool("generate_upload_url", {"file_name": name, "mime_type": mime}))


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("notes.txt", b"\x0c" + SVG, "image/svg+xml"),
        ("notes.txt", b"\x0b\x0c\r\n" + SVG, "image/svg+xml"),
        ("cat.png", b"\x00\x00" + SVG, "image/svg+xml"),
        ("cat.jpg", b"\xef\xbb\xbf\x0c\x0b" + SVG, "image/svg+xml"),
        ("clip.mp4", SVG, "image/svg+xml"),
        ("notes.txt", b"\xff\xfe" + SVG.decode().encode("utf-16-le"), "image/svg+xml"),
        ("notes.txt", "\u00a0\u2003\u200b".encode() + b"<html><script>alert(1)</script></html>", "text/html"),
        ("notes.txt", b"\x0c<img src=x onerror=alert(1)>", "text/html"),
        ("table.csv", b'<rss xmlns:h="http://www.w3.org/1999/xhtml"><h:script>alert(1)</h:script></rss>', None),
    ],
)
async def test_markup_under_a_harmless_name_is_refused_whatever_precedes_it(
    client: Client, wix: WixMediaClient, upload_root: Path, name: str, content: bytes, kind: str | None
) -> None:
    (upload_root / name).write_bytes(content)
    with anyio.fail_after(WAIT):
        text = refusal(await client.call_tool("upload_file", {"path": name}))
    assert "are not allowed" in text
    if kind:
        assert f"{kind!r} are not allowed" in text
    assert await live_ids(wix) == set()


async def test_markup_the_guard_cannot_see_is_refused_by_the_library(
    client: Client, wix: WixMediaClient, upload_root: Path
) -> None:
    """Past the part the guard reads, the library still decides on the content when it stores the bytes."""
    (upload_root / "notes.txt").write_bytes(b" \x0c" * 6000 + SVG)
    with anyio.fail_after(WAIT):
        text = refusal(await client.call_tool("upload_file", {"path": "notes.txt"}))
    assert "MISMATCH_MIME_TYPE" in text
    assert await live_ids(wix) == set()


async def test_a_minted_link_brings_only_what_it_was_minted_for(client: Client, wix: WixMediaClient) -> None:
    with anyio.fail_after(WAIT):
        args = {"file_name": "cat.png", "mime_type": "image/png", "resumable": False}
        recipe = data(await client.call_tool("generate_upload_url", args))
        for hostile in (SVG, b"\x0c" + SVG, b"<!DOCTYPE html><script>alert(1)</script>"):
            refused = await wix.http.put(recipe["upload_url"], content=hostile, headers={"Content-Type": "image/png"})
            assert refused.status_code == 400, refused.text
        assert await live_ids(wix) == set()
        # a name sent with the bytes renames, it does not retype
        stored = await wix.http.put(recipe["upload_url"], params={"filename": "evil.html"}, content=PNG_16x8)
        assert stored.status_code == 200, stored.text
        file_id = stored.json()["file"]["id"]
        grant = data(await client.call_tool("generate_download_url", {"file_id": file_id}))
        served = await wix.http.get(grant["links"][0]["url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
