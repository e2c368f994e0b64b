"""preview_files: stills the model can look at, each after a line naming its file, within a byte budget; private
files through one-minute links that are audited and never shown; nothing for files outside the scope."""

from __future__ import annotations

import base64
import io
import json
import random
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.types import CallToolResult, ImageContent, TextContent
from PIL import Image
from pydantic import SecretStr

from media_mcp.guard import StaticBackend
from media_mcp.library.service import Library
from media_mcp.server.app import create_server
from media_mcp.settings import ServerSettings
from media_mcp.wix.auth import ApiKeyAuth
from media_mcp.wix.client import WixMediaClient
from tests.library.test_processing import pdf, sound, video
from tests.server.conftest import MakeServer, audit_lines
from tests.server.test_tools import failure, ok, seed

pytestmark = pytest.mark.anyio

WAIT = 30


def jpeg(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=90)
    return out.getvalue()


def png_with_alpha(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (20, 40, 220, 128)).save(out, "PNG")
    return out.getvalue()


def noise_jpeg(width: int, height: int, seed_byte: int) -> bytes:
    """A JPEG that compresses badly, so its stills are large."""
    noise = Image.frombytes("RGB", (width, height), random.Random(seed_byte).randbytes(width * height * 3))
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=95)
    return out.getvalue()


def stills(result: CallToolResult) -> list[tuple[str, Image.Image, int]]:
    """Each image of the answer with the text line just before it, decoded, and its byte size."""
    found: list[tuple[str, Image.Image, int]] = []
    blocks: list[Any] = list(result.content)
    for before, block in zip(blocks, blocks[1:], strict=False):
        if isinstance(block, ImageContent):
            assert isinstance(before, TextContent), "every still follows a line naming its file"
            data = base64.b64decode(block.data)
            image = Image.open(io.BytesIO(data))
            assert image.format == "JPEG" and block.mime_type == "image/jpeg"
            found.append((before.text, image, len(data)))
    return found


def every_text(result: CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent)) + json.dumps(
        result.structured_content
    )


async def ready(library: Library) -> None:
    """Wait until the library has processed what was uploaded (bounded by the test's WAIT)."""
    await library.settle()


async def test_stills_of_images_come_small_and_named_and_other_types_get_their_line(
    client: Client, wix: WixMediaClient, library: Library
) -> None:
    red = await seed(wix, "red car.jpg", data=jpeg(1600, 1200, (210, 20, 20)), mime="image/jpeg")
    blue = await seed(wix, "logo.png", data=png_with_alpha(300, 500), mime="image/png", private=True)
    notes = await seed(wix, "notes.txt", data=b"plain words\n", mime="text/plain")
    await ready(library)
    with anyio.fail_after(WAIT):
        result = await client.call_tool("preview_files", {"file_ids": [red, blue, notes], "size": 128})
    answer = ok(result)
    by_id = {f["file_id"]: f for f in answer["files"]}
    assert by_id[red]["shown"] and by_id[red]["width"] == 1600 and by_id[red]["height"] == 1200
    assert by_id[blue]["shown"]
    assert not by_id[notes]["shown"] and "no still" in by_id[notes]["note"]
    shown = stills(result)
    assert [line.split(" (")[0] for line, _, _ in shown] == ['"red car.jpg"', '"logo.png"']
    assert "1600x1200" in shown[0][0]
    (_, car, car_bytes), (_, logo, logo_bytes) = shown
    assert max(car.size) <= 128 and car.size == (128, 96)
    assert max(logo.size) <= 128 and logo.size[1] == 128
    red_pixel = car.convert("RGB").getpixel((64, 48))
    assert isinstance(red_pixel, tuple) and red_pixel[0] > 180 and red_pixel[1] < 60, "the still shows the image"
    assert car_bytes + logo_bytes <= 400_000  # the default budget


async def test_a_private_file_is_fetched_through_a_short_audited_link_that_is_never_shown(
    client: Client, wix: WixMediaClient, library: Library, server_dir: Any
) -> None:
    secret = await seed(wix, "passport.jpg", data=jpeg(800, 600, (10, 200, 10)), mime="image/jpeg", private=True)
    await ready(library)
    with anyio.fail_after(WAIT):
        result = await client.call_tool("preview_files", {"file_ids": [secret]})
    assert ok(result)["files"][0]["shown"]
    assert len(stills(result)) == 1
    text = every_text(result)
    assert "token" not in text and "/download/" not in text and "http" not in text
    minted = [json.loads(line) for line in audit_lines(server_dir) if '"preview_files"' in line]
    assert len(minted) == 1
    assert minted[0]["files"] == [secret] and minted[0]["link_minutes"] == 1 and minted[0]["private"] is True


async def test_all_stills_together_stay_within_the_byte_budget(
    make_server: MakeServer, mode: str, wix: WixMediaClient, library: Library
) -> None:
    ids = [await seed(wix, f"noise-{n}.jpg", data=noise_jpeg(600, 600, n), mime="image/jpeg") for n in range(8)]
    await ready(library)
    budget = 40_000
    async with Client(make_server(preview_max_bytes=budget), mode=mode) as client:
        with anyio.fail_after(WAIT):
            result = await client.call_tool("preview_files", {"file_ids": ids, "size": 512})
    answer = ok(result)
    shown = stills(result)
    assert shown, "at least the first stills fit"
    assert len(shown) == sum(f["shown"] for f in answer["files"])
    assert sum(size for _, _, size in shown) <= budget
    assert all(max(image.size) <= 512 for _, image, _ in shown)


async def test_files_outside_the_scope_or_unknown_give_no_still(
    make_server: MakeServer, mode: str, wix: WixMediaClient, library: Library
) -> None:
    inside = (await wix.create_folder("Inside")).id
    outside = (await wix.create_folder("Outside")).id
    mine = await seed(wix, "mine.jpg", data=jpeg(64, 64, (1, 2, 3)), mime="image/jpeg", folder=inside)
    theirs = await seed(wix, "theirs.jpg", data=jpeg(64, 64, (3, 2, 1)), mime="image/jpeg", folder=outside)
    await ready(library)
    async with Client(make_server(allowed_folders=inside), mode=mode) as client:
        with anyio.fail_after(WAIT):
            both = ok(await client.call_tool("preview_files", {"file_ids": [mine, theirs]}))
            alone = failure(await client.call_tool("preview_files", {"file_ids": [theirs]}))
            unknown = failure(await client.call_tool("preview_files", {"file_ids": ["no-such-file"]}))
    assert [f["file_id"] for f in both["files"]] == [mine]
    assert [(i["id"], i["status"]) for i in both["not_found"]] == [(theirs, "not_found")]
    assert alone.replace(theirs, "X") == unknown.replace("no-such-file", "X")


async def test_sizes_and_counts_outside_the_bounds_are_refused(client: Client, wix: WixMediaClient) -> None:
    photo = await seed(wix, "p.jpg", data=jpeg(32, 32, (9, 9, 9)), mime="image/jpeg")
    with anyio.fail_after(WAIT):
        for args in (
            {"file_ids": [photo], "size": 4096},
            {"file_ids": [photo], "size": 8},
            {"file_ids": [photo] * 13},
            {},
        ):
            assert failure(await client.call_tool("preview_files", args))


async def test_the_tool_is_offered_in_read_only_mode(make_server: MakeServer, mode: str) -> None:
    async with Client(make_server(read_only=True), mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert "preview_files" in names


async def test_a_video_shows_its_poster_and_a_pdf_its_first_page(
    client: Client, wix: WixMediaClient, library: Library
) -> None:
    clip = await seed(wix, "clip.mp4", data=video(width=96, height=64), mime="video/mp4", private=True)
    paper = await seed(wix, "paper.pdf", data=pdf(), mime="application/pdf")
    await ready(library)
    with anyio.fail_after(WAIT):
        result = await client.call_tool("preview_files", {"file_ids": [clip, paper], "size": 64})
    by_id = {f["file_id"]: f for f in ok(result)["files"]}
    assert by_id[clip]["shown"] and by_id[clip]["duration_seconds"] == 1.0
    assert by_id[paper]["shown"]
    shown = stills(result)
    assert [line.split(" (")[0] for line, _, _ in shown] == ['"clip.mp4"', '"paper.pdf"']
    assert "96x64, 1 s" in shown[0][0]
    assert all(max(image.size) <= 64 for _, image, _ in shown)


# --- what processing found, through get_file and generate_download_url ---------------------------------------


async def test_get_file_says_what_processing_found_and_links_reach_each_variant(
    client: Client, wix: WixMediaClient, library: Library
) -> None:
    photo = await seed(wix, "red.jpg", data=jpeg(320, 200, (200, 20, 20)), mime="image/jpeg")
    tune = await seed(wix, "tone.wav", data=sound(), mime="audio/wav")
    clip = await seed(wix, "clip.mp4", data=video(), mime="video/mp4")
    await ready(library)
    with anyio.fail_after(WAIT):
        files = {f["id"]: f for f in ok(await client.call_tool("get_file", {"file_ids": [photo, tune, clip]}))["files"]}
        assert files[photo]["width"] == 320 and files[photo]["colors"][0].startswith(
            "#c814"
        )  # JPEG: near the red it was
        assert files[tune]["duration_seconds"] == 1.0 and files[tune]["asset_keys"] == ["src", "128kbs.mp3"]
        assert files[clip]["width"] == 64 and files[clip]["duration_seconds"] == 1.0
        assert files[clip]["asset_keys"] == ["src"]
        links = ok(await client.call_tool("generate_download_url", {"file_id": tune, "asset_keys": ["128kbs.mp3"]}))
        assert [link["asset_key"] for link in links["links"]] == ["128kbs.mp3"]
        refused = failure(
            await client.call_tool("generate_download_url", {"file_id": tune, "asset_keys": ["720p.mp4"]})
        )
    assert "src" in refused and "128kbs.mp3" in refused, refused
    body = (await wix.http.get(links["links"][0]["url"])).content
    assert body[:3] == b"ID3" or body[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"), "an MP3"


# --- the Wix backend: Wix's own image URLs and short links, against a recording fake ---------------------------


class FakeWixMedia:
    """Wix's API and media hosts as the guard meets them: descriptors, download links (no `preview` asset, as Wix
    documents none for images), the static image host with its transformation URLs; every request recorded."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.photo = jpeg(1200, 900, (30, 160, 40))

    def descriptor(self, file_id: str, private: bool) -> dict[str, Any]:
        static = f"https://static.wixstatic.com/media/{file_id}"
        image = {"id": file_id, "url": "" if private else static, "width": 1200, "height": 900}
        preview = {
            "id": "",
            "url": "" if private else f"{static}/v1/fit/w_800,h_800/p.jpg",
            "width": 800,
            "height": 600,
        }
        return {"id": file_id, "displayName": f"{file_id}.jpg", "url": static, "parentFolderId": "media-root",
                "mediaType": "IMAGE", "operationStatus": "READY", "private": private, "sizeInBytes": "1000",
                "state": "OK", "media": {"image": {"image": image, "previewImage": preview}}}  # fmt: skip

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        host, path = request.url.host, request.url.path
        if host == "wix.test" and path.endswith("/files/get-file-by-id"):
            file_id = request.url.params["fileId"]
            return httpx.Response(200, json={"file": self.descriptor(file_id, private=file_id.startswith("secret"))})
        if host == "wix.test" and path.endswith("/files/generate-file-download-url"):
            asked = json.loads(request.content)
            if asked.get("assetKeys") != ["src"]:
                refusal = {"code": "INVALID_ASSET_KEY", "description": "invalid asset key"}
                return httpx.Response(
                    400, json={"message": "invalid asset key", "details": {"applicationError": refusal}}
                )
            url = f"https://download-files.wixmp.com/media/{asked['fileId']}?token=signed"
            return httpx.Response(200, json={"downloadUrls": [{"url": url, "assetKey": "src"}]})
        if host in ("static.wixstatic.com", "download-files.wixmp.com"):
            return httpx.Response(200, content=self.photo, headers={"Content-Type": "image/jpeg"})
        return httpx.Response(404, json={"message": "not found"})


async def test_on_wix_public_stills_come_from_wix_image_urls_and_private_ones_from_short_links(
    mode: str, server_dir: Any
) -> None:
    fake = FakeWixMedia()
    adapter = WixMediaClient(
        "http://wix.test",
        ApiKeyAuth(SecretStr("key"), "site"),
        http=httpx.AsyncClient(transport=httpx.MockTransport(fake)),
    )
    server = create_server(ServerSettings(), StaticBackend(adapter, "wix"), data_dir=server_dir)
    async with Client(server, mode=mode) as client:
        with anyio.fail_after(WAIT):
            result = await client.call_tool("preview_files", {"file_ids": ["open1", "secret1"], "size": 200})
    assert [f["shown"] for f in ok(result)["files"]] == [True, True]
    assert all(max(image.size) <= 200 for _, image, _ in stills(result))
    fetched = [str(r.url) for r in fake.requests if r.url.host != "wix.test"]
    assert fetched == [
        "https://static.wixstatic.com/media/open1/v1/fit/w_200,h_200/preview.jpg",
        "https://download-files.wixmp.com/media/secret1?token=signed",
    ]
    assert all("authorization" not in r.headers for r in fake.requests if r.url.host != "wix.test")
    asked = [json.loads(r.content)["assetKeys"] for r in fake.requests if r.url.path.endswith("download-url")]
    assert asked == [["preview"], ["src"]]  # Wix refused the preview asset; the image itself came, scaled here
    assert "signed" not in every_text(result)
    minted = [json.loads(line) for line in audit_lines(server_dir) if '"preview_files"' in line]
    assert [(m["files"], m["asset_key"], m["link_minutes"]) for m in minted] == [(["secret1"], "src", 1)]
