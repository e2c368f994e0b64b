"""Wix image URLs on the static route: fill, fit and crop, their errors, and the on-disk cache of variants."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from PIL import Image

from media_mcp.library import transforms
from media_mcp.library.app import create_app
from media_mcp.library.errors import ApiError
from media_mcp.library.service import Library
from media_mcp.library.variants import VariantCache
from media_mcp.settings import LibrarySettings
from tests.conftest import Api, FakeClock

pytestmark = pytest.mark.anyio

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 160, 0)


def encode(img: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def decode(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    img = Image.open(io.BytesIO(response.content))
    img.load()
    return img


def halves(
    size: tuple[int, int], first: tuple[int, int, int], second: tuple[int, int, int], *, vertical: bool
) -> bytes:
    """An image split in two colours: left/right, or top/bottom when ``vertical``."""
    img = Image.new("RGB", size, first)
    w, h = size
    img.paste(second, (0, h // 2, w, h) if vertical else (w // 2, 0, w, h))
    return encode(img)


def colour_at(img: Image.Image, x: int, y: int) -> tuple[int, ...]:
    pixel = img.convert("RGB").getpixel((x, y))
    assert isinstance(pixel, tuple)
    return pixel


def near(found: tuple[int, ...], want: tuple[int, int, int], slack: int = 40) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(found, want, strict=True))


async def image(api: Api, data: bytes, name: str = "photo.png", mime: str = "image/png", **fields: Any) -> str:
    """Upload an image; its static URL."""
    file = await api.upload(name, data, mime, **fields)
    url: str = file["url"]
    return url


def variants(data_dir: Path) -> set[Path]:
    root = data_dir / "variants"
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


# --- the three methods ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ext", "pil_format", "content_type"),
    [
        ("jpg", "JPEG", "image/jpeg"),
        ("JPEG", "JPEG", "image/jpeg"),
        ("png", "PNG", "image/png"),
        ("webp", "WEBP", "image/webp"),
        ("gif", "GIF", "image/gif"),
    ],
)
async def test_fill_gives_the_exact_size_in_the_format_of_the_name(
    api: Api, ext: str, pil_format: str, content_type: str
) -> None:
    url = await image(api, encode(Image.new("RGBA", (300, 200), (*GREEN, 200))))
    response = await api.http.get(f"{url}/v1/fill/w_120,h_90,al_c,q_90/photo.{ext}")
    img = decode(response)
    assert (img.size, img.format) == ((120, 90), pil_format)
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert near(colour_at(img, 60, 45), GREEN, slack=90)


async def test_fit_keeps_the_aspect_ratio_and_never_enlarges(api: Api) -> None:
    url = await image(api, encode(Image.new("RGB", (200, 100), RED)))
    assert decode(await api.http.get(f"{url}/v1/fit/w_200,h_50/a.png")).size == (100, 50)
    assert decode(await api.http.get(f"{url}/v1/fit/w_40,h_400/a.png")).size == (40, 20)
    assert decode(await api.http.get(f"{url}/v1/fit/w_5000,h_5000/a.png")).size == (200, 100)


@pytest.mark.parametrize(
    ("align", "vertical", "want"),
    [
        ("l", False, RED),
        ("r", False, BLUE),
        ("tl", False, RED),
        ("br", False, BLUE),
        ("t", True, RED),
        ("b", True, BLUE),
    ],
)
async def test_fill_crops_where_al_points(
    asgi_api: Api, align: str, vertical: bool, want: tuple[int, int, int]
) -> None:
    size = (100, 400) if vertical else (400, 100)
    url = await image(asgi_api, halves(size, RED, BLUE, vertical=vertical))
    img = decode(await asgi_api.http.get(f"{url}/v1/fill/w_50,h_50,al_{align}/a.png"))
    assert img.size == (50, 50)
    assert all(near(colour_at(img, x, y), want) for x in (2, 25, 47) for y in (2, 25, 47))


async def test_fill_centres_by_default_and_may_enlarge(asgi_api: Api) -> None:
    url = await image(asgi_api, halves((40, 10), RED, BLUE, vertical=False))
    img = decode(await asgi_api.http.get(f"{url}/v1/fill/w_300,h_300/a.png"))
    assert img.size == (300, 300)
    assert near(colour_at(img, 5, 150), RED) and near(colour_at(img, 294, 150), BLUE)


async def test_crop_returns_the_region_of_the_original(api: Api) -> None:
    source = Image.new("RGB", (120, 80), RED)
    source.paste(BLUE, (30, 20, 70, 50))
    url = await image(api, encode(source))
    img = decode(await api.http.get(f"{url}/v1/crop/x_30,y_20,w_40,h_30/part.png"))
    assert img.size == (40, 30)
    assert {colour_at(img, x, y) for x in range(40) for y in range(30)} == {BLUE}
    edge = decode(await api.http.get(f"{url}/v1/crop/x_0,y_0,w_120,h_80/all.png"))
    assert edge.size == (120, 80)


async def test_a_large_jpeg_is_scaled_down(asgi_api: Api) -> None:
    """JPEGs decode at a reduced scale when the result is small; the size asked for is still exact."""
    photo = Image.linear_gradient("L").resize((1600, 1200)).convert("RGB")
    url = await image(asgi_api, encode(photo, "JPEG", quality=80), "big.jpg", "image/jpeg")
    assert decode(await asgi_api.http.get(f"{url}/v1/fill/w_101,h_37/s.jpg")).size == (101, 37)
    assert decode(await asgi_api.http.get(f"{url}/v1/fit/w_333,h_333/s.jpg")).size == (333, 250)


async def test_the_exif_orientation_is_applied(asgi_api: Api) -> None:
    """A photo stored 200x100 with orientation 6 (turned a quarter) is shown, and transformed, as 100x200."""
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.open(io.BytesIO(halves((200, 100), RED, BLUE, vertical=False)))
    url = await image(asgi_api, encode(stored, "JPEG", exif=exif.tobytes()), "turned.jpg", "image/jpeg")
    shown = decode(await asgi_api.http.get(f"{url}/v1/fit/w_1000,h_1000/t.png"))
    assert shown.size == (100, 200)
    assert near(colour_at(shown, 50, 10), RED) and near(colour_at(shown, 50, 190), BLUE)
    assert decode(await asgi_api.http.get(f"{url}/v1/fill/w_20,h_30/t.jpg")).size == (20, 30)
    assert decode(await asgi_api.http.get(f"{url}/v1/crop/x_0,y_150,w_100,h_50/t.png")).size == (100, 50)


async def test_image_kit_urls_with_sharpening_and_encoding_work(asgi_api: Api) -> None:
    """The form Wix's image-kit builds: ``usm_`` is applied, ``enc_`` accepted (the extension picks the format)."""
    url = await image(asgi_api, encode(Image.effect_noise((160, 120), 60).convert("RGB")))
    plain = decode(await asgi_api.http.get(f"{url}/v1/fill/w_120,h_80,al_c,q_80/n.png"))
    sharp = decode(await asgi_api.http.get(f"{url}/v1/fill/w_120,h_80,al_c,q_80,usm_0.66_1.00_0.01,enc_auto/n.png"))
    assert sharp.size == plain.size == (120, 80)
    assert sharp.tobytes() != plain.tobytes()


async def test_transparency_is_kept_where_the_format_has_it_and_white_elsewhere(asgi_api: Api) -> None:
    source = Image.new("P", (40, 40), 0)
    source.putpalette([*RED, *BLUE])
    source.paste(1, (20, 0, 40, 40))
    url = await image(asgi_api, encode(source, "GIF", transparency=0), "half.gif", "image/gif")
    png = decode(await asgi_api.http.get(f"{url}/v1/fit/w_40,h_40/t.png"))
    clear = png.getpixel((5, 20))
    assert png.mode == "RGBA" and isinstance(clear, tuple) and clear[3] == 0
    assert near(colour_at(png, 35, 20), BLUE)
    jpeg = decode(await asgi_api.http.get(f"{url}/v1/fit/w_40,h_40/t.jpg"))
    assert near(colour_at(jpeg, 5, 20), (255, 255, 255)) and near(colour_at(jpeg, 35, 20), BLUE)


async def test_head_answers_headers_only(api: Api) -> None:
    url = await image(api, encode(Image.new("RGB", (64, 64), RED)))
    for _ in range(2):  # rendered, then from the cache
        response = await api.http.head(f"{url}/v1/fill/w_10,h_10/a.webp")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/webp"
        assert response.content == b""


# --- errors --------------------------------------------------------------------------------------


INVALID = [
    ("/v1/stretch/w_10,h_10/a.jpg", "unknown transformation"),
    ("/v1/fill/w_10/a.jpg", "missing h_"),
    ("/v1/crop/w_10,h_10/a.jpg", "missing x_, y_"),
    ("/v1/fill/w_10,h_10,w_20/a.jpg", "given twice"),
    ("/v1/fill/w_0,h_10/a.jpg", "w_ must be a whole number from 1 to 5000"),
    ("/v1/fill/w_10,h_5001/a.jpg", "h_ must be"),
    ("/v1/fill/w_-5,h_10/a.jpg", "w_ must be"),
    ("/v1/fill/w_1.5,h_10/a.jpg", "w_ must be"),
    ("/v1/fill/w_10,h_10,q_0/a.jpg", "q_ must be a whole number from 1 to 100"),
    ("/v1/fill/w_10,h_10,q_101/a.jpg", "q_ must be"),
    ("/v1/fill/w_10,h_10,al_middle/a.jpg", "al_ must be one of"),
    ("/v1/fill/w_10,h_10,blur_3/a.jpg", "blur_ is not supported by fill"),
    ("/v1/crop/x_0,y_0,w_10,h_10,al_c/a.jpg", "al_ is not supported by crop"),
    ("/v1/fill/w10,h_10/a.jpg", "malformed parameter"),
    ("/v1/fill/w_10,,h_10/a.jpg", "malformed parameter"),
    ("/v1/fill/w_10,h_10,usm_9_1_0/a.jpg", "usm_ takes"),
    ("/v1/fill/w_10,h_10/a.bmp", "must end in .jpg"),
    ("/v1/fill/w_10,h_10/noextension", "must end in .jpg"),
    ("/v1/crop/x_50,y_0,w_60,h_10/a.jpg", "lies outside the 100x50 image"),
    ("/v1/crop/x_0,y_41,w_10,h_10/a.jpg", "lies outside"),
]
"""Transformations of a 100x50 image, and what the 400 says about each."""


async def test_invalid_parameters_are_400_with_a_message(asgi_api: Api) -> None:
    url = await image(asgi_api, encode(Image.new("RGB", (100, 50), RED)))
    for path, says in INVALID:
        response = await asgi_api.http.get(url + path)
        assert response.status_code == 400, (path, response.text)
        assert says in response.json()["message"], path
        assert response.json()["details"]["applicationError"]["code"] == "INVALID_IMAGE_TRANSFORMATION"
    assert variants(asgi_api.library.data.root) == set()


async def test_private_files_are_403_and_unknown_ones_404(api: Api) -> None:
    url = await image(api, encode(Image.new("RGB", (30, 30), RED)), private=True)
    for suffix in ("/v1/fill/w_10,h_10/a.jpg", "/v1/nonsense/zz/a.txt"):
        response = await api.http.get(url + suffix)
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/json"
    missing = url.rsplit("/", 1)[0] + "/0123456789abcdef~mv2.png/v1/fill/w_10,h_10/a.jpg"
    assert (await api.http.get(missing)).status_code == 404
    assert variants(api.library.data.root) == set()


async def test_files_that_are_not_decodable_images_are_400(asgi_api: Api) -> None:
    text = await asgi_api.upload("notes.txt", b"hello", "text/plain")
    response = await asgi_api.http.get(text["url"] + "/v1/fill/w_10,h_10/a.jpg")
    assert response.status_code == 400
    assert "only images" in response.json()["message"]
    whole = encode(Image.effect_noise((64, 64), 50))
    # a PNG cut short, and a format Pillow could read but uploads do not take (TGA; EPS would run Ghostscript)
    for data in (whole[: len(whole) // 2], encode(Image.new("RGB", (8, 8), RED), "TGA")):
        url = await image(asgi_api, data, "broken.png")
        response = await asgi_api.http.get(url + "/v1/fit/w_10,h_10/a.jpg")
        assert response.status_code == 400
        assert response.json()["details"]["applicationError"]["code"] == "UNSUPPORTED_IMAGE"
        assert str(asgi_api.library.data.root) not in response.text


def test_rendering_refuses_what_it_cannot_or_must_not_decode(tmp_path: Path) -> None:
    """The renderer itself, whatever processing made of the file: no decoder outside the list, no bombs."""
    spec = transforms.parse_spec("fit", "w_10,h_10", "a.png")
    cases = {
        "truncated.png": (encode(Image.effect_noise((64, 64), 50))[:300], "UNSUPPORTED_IMAGE"),
        "disguised.tga": (encode(Image.new("RGB", (8, 8), RED), "TGA"), "UNSUPPORTED_IMAGE"),
        "bomb.png": (encode(Image.new("1", (8000, 7000)), optimize=True), "IMAGE_TOO_LARGE"),
    }
    for name, (data, code) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ApiError) as refused:
            transforms.render(tmp_path / name, spec)
        assert (refused.value.status, refused.value.code) == (400, code), name
        assert str(tmp_path) not in refused.value.description
    with pytest.raises(ApiError) as gone:
        transforms.render(tmp_path / "missing.png", spec)
    assert gone.value.status == 404


async def test_a_decompression_bomb_is_refused_before_decoding(asgi_api: Api) -> None:
    bomb = encode(Image.new("1", (8000, 7000)), optimize=True)  # 56 megapixels in a few kilobytes
    url = await image(asgi_api, bomb, "bomb.png")
    response = await asgi_api.http.get(f"{url}/v1/fit/w_10,h_10/a.png")
    assert response.status_code == 400
    assert "megapixels" in response.json()["message"]


async def test_hostile_names_only_give_an_extension(api: Api) -> None:
    url = await image(api, encode(Image.new("RGB", (20, 20), RED)))
    before = {p for p in api.library.data.root.rglob("*") if "variants" not in p.parts}
    for name in ("..%2F..%2F..%2Fetc%2Fpasswd.png", "%2e%2e/%2e%2e/x.png", "a%00b.png", "%E2%80%AEgnp.png", "x.y.PNG"):
        assert decode(await api.http.get(f"{url}/v1/fill/w_5,h_5/{name}")).format == "PNG"
    after = {p for p in api.library.data.root.rglob("*") if "variants" not in p.parts}
    assert after == before
    assert len(variants(api.library.data.root)) == 1


# --- the cache -----------------------------------------------------------------------------------


async def test_a_variant_is_cached_owner_only_and_revalidates(api: Api) -> None:
    url = await image(api, encode(Image.effect_noise((80, 60), 50)))
    first = await api.http.get(f"{url}/v1/fill/w_30,h_20,al_c/v.png")
    second = await api.http.get(f"{url}/v1/fill/h_20,w_30/v.png")  # same variant, other order, default al_
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert first.content == second.content and first.headers["etag"] == second.headers["etag"]
    assert second.headers["content-type"] == "image/png"
    [cached] = variants(api.library.data.root)
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    assert stat.S_IMODE(cached.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(cached.parent.parent.stat().st_mode) == 0o700
    revalidated = await api.http.get(f"{url}/v1/fill/w_30,h_20/v.png", headers={"If-None-Match": first.headers["etag"]})
    assert revalidated.status_code == 304 and revalidated.content == b""
    jpeg = await api.http.get(f"{url}/v1/fill/w_30,h_20/v.jpeg")
    assert (await api.http.get(f"{url}/v1/fill/w_30,h_20,q_85/v.jpg")).headers["x-cache"] == "HIT"
    assert jpeg.headers["etag"] != first.headers["etag"]


async def test_concurrent_requests_for_one_variant_render_it_once(api: Api) -> None:
    url = await image(api, encode(Image.effect_noise((300, 200), 50)))
    answers: list[httpx.Response] = []

    async def fetch() -> None:
        answers.append(await api.http.get(f"{url}/v1/fit/w_150,h_150/c.webp"))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(fetch)
    assert [r.status_code for r in answers] == [200] * 6
    assert sorted(r.headers["x-cache"] for r in answers) == ["HIT"] * 5 + ["MISS"]
    assert len({r.content for r in answers}) == 1
    assert len(variants(api.library.data.root)) == 1
    assert not [p for p in (api.library.data.root / "variants").rglob("*.tmp")]


async def test_a_replaced_file_never_serves_its_old_variant(asgi_api: Api) -> None:
    url = await image(asgi_api, encode(Image.new("RGB", (40, 40), RED)))
    other = await asgi_api.upload("blue.png", encode(Image.new("RGB", (40, 40), BLUE)), "image/png")
    assert near(colour_at(decode(await asgi_api.http.get(f"{url}/v1/fill/w_8,h_8/r.png")), 4, 4), RED)
    with asgi_api.library.db.tx() as conn:  # the file's bytes change under the same id
        blob, digest = conn.execute("SELECT blob, hash FROM files WHERE id = ?", (other["id"],)).fetchone()
        conn.execute("UPDATE files SET blob = ?, hash = ? WHERE id = ?", (blob, digest, url.rsplit("/", 1)[1]))
    again = await asgi_api.http.get(f"{url}/v1/fill/w_8,h_8/r.png")
    assert again.headers["x-cache"] == "MISS"
    assert near(colour_at(decode(again), 4, 4), BLUE)


async def test_a_deleted_file_has_no_variants(api: Api) -> None:
    url = await image(api, encode(Image.new("RGB", (40, 40), RED)))
    assert (await api.http.get(f"{url}/v1/fill/w_8,h_8/r.png")).status_code == 200
    file_id = url.rsplit("/", 1)[1]
    await api.ok("POST", "/bulk/files/delete", json={"fileIds": [file_id], "permanent": True})
    assert (await api.http.get(f"{url}/v1/fill/w_8,h_8/r.png")).status_code == 404


@asynccontextmanager
async def small_cache(tmp_path: Path, clock: FakeClock, max_bytes: int) -> AsyncIterator[Api]:
    settings = LibrarySettings(data_dir=tmp_path / "small", library_transform_cache_bytes=max_bytes)
    with Library.open(settings, clock=clock) as lib:
        transport = httpx.ASGITransport(app=create_app(lib))
        async with httpx.AsyncClient(transport=transport, base_url="http://library.test") as http:
            yield Api(http, lib, "asgi")


async def test_the_cache_evicts_the_least_recently_used(tmp_path: Path, clock: FakeClock) -> None:
    """Each variant is a ~3.1 KB PNG of noise: two fit in 9000 bytes, a third sends out the one used longest ago."""
    noise = Image.frombytes("RGB", (120, 40), os.urandom(120 * 40 * 3))  # PNG cannot compress it
    async with small_cache(tmp_path, clock, 9000) as api:
        url = await image(api, encode(noise))
        made: dict[int, Path] = {}

        async def crop(x: int, cache: str) -> None:
            before = variants(api.library.data.root)
            response = await api.http.get(f"{url}/v1/crop/x_{x},y_0,w_32,h_32/e.png")
            assert response.headers["x-cache"] == cache
            if cache == "MISS":
                [made[x]] = variants(api.library.data.root) - before
                assert 3000 < made[x].stat().st_size <= 3600

        await crop(0, "MISS")
        await crop(40, "MISS")
        await crop(0, "HIT")  # now 40 is the one used longest ago
        await crop(80, "MISS")
        assert variants(api.library.data.root) == {made[0], made[80]}
        await crop(0, "HIT")
        await crop(40, "MISS")


async def test_a_zero_bound_keeps_no_variants(tmp_path: Path, clock: FakeClock) -> None:
    async with small_cache(tmp_path, clock, 0) as api:
        url = await image(api, encode(Image.new("RGB", (40, 40), RED)))
        for _ in range(2):
            response = await api.http.get(f"{url}/v1/fit/w_8,h_8/r.gif")
            assert decode(response).size == (8, 8) and response.headers["x-cache"] == "MISS"
        assert not (api.library.data.root / "variants").exists()


def test_eviction_removes_crash_leftovers_and_ignores_stray_files(tmp_path: Path) -> None:
    cache = VariantCache(tmp_path / "variants", 10_000)
    shard = tmp_path / "variants" / "ab"
    shard.mkdir(parents=True)
    old_tmp, new_tmp = shard / ".x.png.1.tmp", shard / ".y.png.2.tmp"
    for path in (old_tmp, new_tmp):
        path.write_bytes(b"x" * 100)
    os.utime(old_tmp, (1, 1))
    (tmp_path / "variants" / "stray").write_bytes(b"not a shard")
    assert cache.evict() == 0
    assert not old_tmp.exists() and new_tmp.exists()
