"""Processing, as Wix does it: uploaded and imported files are PENDING, then READY with what their decoding found
(sizes, colours, durations) and the assets it made (previews, thumbnails, renditions), or FAILED with a reason.

Every file here is real media made in the test (Pillow, PyAV), small enough to process in milliseconds.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import av
import httpx
import pytest
from av.audio.stream import AudioStream
from PIL import Image

from media_mcp.library.app import create_app
from media_mcp.library.processor import ProcessingLimits
from media_mcp.library.service import Library
from media_mcp.settings import LibrarySettings
from tests.conftest import Api, FakeClock, PNG_16x8

pytestmark = pytest.mark.anyio

WAIT = 60
RED, BLUE = (220, 20, 30), (20, 40, 210)


# --- media made here ---------------------------------------------------------------------------


def jpeg(width: int = 1200, height: int = 800, orientation: int | None = None) -> bytes:
    """Red, with a blue band over its top quarter."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (0, 0, width, height // 4))
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def transparent_png() -> bytes:
    """Blue on its left half, see-through on its right."""
    image = Image.new("RGBA", (60, 40), (0, 0, 0, 0))
    image.paste((*BLUE, 255), (0, 0, 30, 40))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (a few bytes that would decode to gigabytes)."""
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, "PNG")
    data = bytearray(out.getvalue())
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


def video(
    width: int = 64, height: int = 48, frames: int = 12, fps: int = 12, sound: bool = True, turn: int = 0
) -> bytes:
    """An H.264 MP4 (with AAC sound), its frames fading from black to red; ``turn``: to be shown turned so."""
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        if turn:
            stream.set_display_rotation(turn)
        audio = container.add_stream("aac", rate=8000) if sound else None
        if audio is not None:
            audio.layout = "mono"
        for n in range(frames):
            picture = Image.new("RGB", (width, height), (255 * n // frames, 0, 0))
            frame = av.VideoFrame.from_image(picture)  # type: ignore[no-untyped-call]
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio is not None:
            samples = 8000 * frames // fps
            frame = av.AudioFrame(format="fltp", layout="mono", samples=samples)
            frame.planes[0].update(struct.pack(f"<{samples}f", *(0.3 * math.sin(i / 4) for i in range(samples))))
            frame.sample_rate, frame.pts = 8000, 0
            container.mux(audio.encode(frame))
            container.mux(audio.encode(None))
    return out.getvalue()


def sound(fmt: str = "wav", codec: str = "pcm_s16le", bit_rate: int | None = None, seconds: float = 1.0) -> bytes:
    """A second of a 440 Hz tone, in stereo at 44.1 kHz."""
    rate, samples = 44100, int(44100 * seconds)
    out = io.BytesIO()
    with av.open(out, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        assert isinstance(stream, AudioStream)
        stream.layout = "stereo"
        if bit_rate:
            stream.bit_rate = bit_rate
        tone = b"".join(struct.pack("<hh", v, v) for v in (int(9000 * math.sin(i * 0.0627)) for i in range(samples)))
        frame = av.AudioFrame(format="s16", layout="stereo", samples=samples)
        frame.planes[0].update(tone)
        frame.sample_rate, frame.pts = rate, 0
        resampler = av.AudioResampler(format=stream.codec_context.format, layout="stereo", rate=rate)
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))
    return out.getvalue()


def pdf() -> bytes:
    """One red page, 300 x 200 points."""
    out = io.BytesIO()
    Image.new("RGB", (300, 200), RED).save(out, "PDF", resolution=72.0)
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def near(rgb: dict[str, int], target: tuple[int, int, int], within: int = 40) -> bool:
    return all(abs(rgb[c] - v) <= within for c, v in zip("rgb", target, strict=True))


# --- helpers on the API -------------------------------------------------------------------------


async def described(api: Api, file_id: str) -> dict[str, Any]:
    """The file's descriptor once the processing started so far has ended."""
    with anyio.fail_after(WAIT):
        await api.library.settle()
    file: dict[str, Any] = (await api.ok("GET", "/files/get-file-by-id", params={"fileId": file_id}))["file"]
    return file


async def processed(api: Api, name: str, data: bytes, mime: str, **fields: Any) -> dict[str, Any]:
    uploaded = await api.upload(name, data, mime, **fields)
    return await described(api, uploaded["id"])


async def links(api: Api, file_id: str, *keys: str) -> dict[str, str]:
    minted = await api.ok("POST", "/files/generate-file-download-url", json={"fileId": file_id, "assetKeys": keys})
    return {u["assetKey"]: u["url"] for u in minted["downloadUrls"]}


async def fetch(api: Api, url: str, mime: str) -> bytes:
    got = await api.http.get(url)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith(mime), got.headers["content-type"]
    return got.content


def refused_keys(response: httpx.Response) -> list[str]:
    assert response.status_code == 400, response.text
    error = response.json()["details"]["applicationError"]
    assert error["code"] == "INVALID_ASSET_KEY"
    valid: list[str] = error["data"]["validAssetKeys"]
    assert all(repr(k) in error["description"] for k in valid)
    return valid


@pytest.fixture
def limits() -> ProcessingLimits:
    return ProcessingLimits()


@pytest.fixture
def tuned(tmp_path: Path, clock: FakeClock, limits: ProcessingLimits) -> Iterator[Library]:
    """A library with the processing limits of the ``limits`` fixture."""
    with Library.open(LibrarySettings(data_dir=tmp_path / "tuned"), clock=clock, processing=limits) as lib:
        yield lib


@asynccontextmanager
async def serving(lib: Library, transport: httpx.AsyncBaseTransport | None = None) -> AsyncIterator[Api]:
    async def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    app = create_app(lib, import_transport=transport, resolver=public)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://library.test") as http:
        yield Api(http, lib, "asgi")


@pytest.fixture
async def tuned_api(tuned: Library) -> AsyncIterator[Api]:
    async with serving(tuned) as api:
        yield api


# --- images -------------------------------------------------------------------------------------


async def test_an_image_gets_its_size_colours_a_preview_and_a_thumbnail(api: Api) -> None:
    file = await processed(api, "poster.jpg", jpeg(), "image/jpeg")
    assert file["operationStatus"] == "READY"
    media = file["media"]["image"]
    assert (media["image"]["width"], media["image"]["height"]) == (1200, 800)
    assert near(media["colors"]["prominent"]["rgb"], RED)
    assert media["colors"]["prominent"]["hex"] == "#{r:02x}{g:02x}{b:02x}".format(**media["colors"]["prominent"]["rgb"])
    assert any(near(c["rgb"], BLUE) for c in media["colors"]["palette"])
    preview = media["previewImage"]
    assert (preview["width"], preview["height"]) == (800, 533)
    assert decoded(await fetch(api, preview["url"], "image/jpeg")).size == (800, 533)
    thumbnail = decoded(await fetch(api, file["thumbnailUrl"], "image/jpeg"))
    assert thumbnail.size == (400, 267)
    assert thumbnail.getpixel((200, 250)) == pytest.approx(RED, abs=40)
    assert (await fetch(api, file["url"], "image/jpeg")) == jpeg()  # the original, as uploaded

    urls = await links(api, file["id"], "src", "preview", "thumbnail")
    assert decoded(await fetch(api, urls["src"], "image/jpeg")).size == (1200, 800)
    assert decoded(await fetch(api, urls["preview"], "image/jpeg")).size == (800, 533)
    got = await api.http.get(urls["thumbnail"])
    assert decoded(got.content).size == (400, 267)
    assert got.headers["content-disposition"] == 'attachment; filename="poster-thumbnail.jpg"'
    wrong = await api.call(
        "POST", "/files/generate-file-download-url", json={"fileId": file["id"], "assetKeys": ["480p.mp4"]}
    )
    assert refused_keys(wrong) == ["src", "preview", "thumbnail"]


async def test_a_turned_photo_is_described_upright(asgi_api: Api) -> None:
    file = await processed(asgi_api, "phone.jpg", jpeg(40, 20, orientation=6), "image/jpeg")
    assert (file["media"]["image"]["image"]["width"], file["media"]["image"]["image"]["height"]) == (20, 40)
    assert decoded(await fetch(asgi_api, file["thumbnailUrl"], "image/jpeg")).size == (20, 40)


async def test_transparency_is_kept_and_left_out_of_the_colours(asgi_api: Api) -> None:
    file = await processed(asgi_api, "logo.png", transparent_png(), "image/png")
    media = file["media"]["image"]
    assert [near(c["rgb"], BLUE, 5) for c in media["colors"]["palette"]] == [True]
    thumbnail = decoded(await fetch(asgi_api, file["thumbnailUrl"], "image/png"))
    assert thumbnail.mode == "RGBA" and thumbnail.size == (60, 40)  # never enlarged
    assert thumbnail.getchannel("A").getpixel((50, 20)) == 0


# --- video, audio, documents --------------------------------------------------------------------


async def test_a_video_gets_its_resolution_poster_and_duration(api: Api) -> None:
    file = await processed(api, "clip.mp4", video(), "video/mp4")
    assert file["operationStatus"] == "READY"
    clip = file["media"]["video"]
    (source,) = clip["resolutions"]  # nothing smaller than 48p is made
    assert source == {
        "url": file["url"], "width": 64, "height": 48, "format": "mp4", "quality": "48p", "assetKey": "src",
        "durationInMilliseconds": 1000,
    }  # fmt: skip
    (poster,) = clip["posters"]
    assert (poster["width"], poster["height"]) == (64, 48)
    assert decoded(await fetch(api, poster["url"], "image/jpeg")).size == (64, 48)
    assert decoded(await fetch(api, file["thumbnailUrl"], "image/jpeg")).size == (64, 48)
    wrong = await api.call(
        "POST", "/files/generate-file-download-url", json={"fileId": file["id"], "assetKeys": ["480p.mp4"]}
    )
    assert refused_keys(wrong) == ["src", "preview", "thumbnail"]


async def test_a_video_filmed_sideways_is_described_as_shown(asgi_api: Api) -> None:
    file = await processed(asgi_api, "phone.mp4", video(496, 482, frames=2, sound=False, turn=90), "video/mp4")
    clip = file["media"]["video"]
    assert [(r["assetKey"], r["width"], r["height"]) for r in clip["resolutions"]] == [
        ("src", 482, 496),
        ("480p.mp4", 480, 494),
    ]
    assert (clip["posters"][0]["width"], clip["posters"][0]["height"]) == (482, 496)
    with av.open(io.BytesIO(await fetch(asgi_api, clip["resolutions"][1]["url"], "video/mp4")), "r") as rendition:
        first = next(rendition.decode(video=0))
        assert (first.width, first.height, first.rotation) == (494, 480, 90)  # stored as the source is, turned so


async def test_a_video_larger_than_480p_gets_a_480p_rendition(asgi_api: Api) -> None:
    file = await processed(asgi_api, "square.mp4", video(496, 496, frames=4), "video/mp4")
    resolutions = file["media"]["video"]["resolutions"]
    assert [(r["assetKey"], r["format"], r["width"], r["height"]) for r in resolutions] == [
        ("src", "mp4", 496, 496),
        ("480p.mp4", "480p.mp4", 480, 480),  # best first
    ]
    assert resolutions[1]["url"].endswith("/480p.mp4")
    urls = await links(asgi_api, file["id"], "480p.mp4")
    got = await asgi_api.http.get(urls["480p.mp4"])
    assert got.headers["content-type"] == "video/mp4"
    assert got.headers["content-disposition"] == 'attachment; filename="square-480p.mp4"'
    with av.open(io.BytesIO(got.content), "r") as rendition:
        (picture,) = rendition.streams.video
        assert (picture.codec_context.name, picture.width, picture.height) == ("h264", 480, 480)
        assert [s.codec_context.name for s in rendition.streams.audio] == ["aac"]
        assert sum(1 for _ in rendition.decode(picture)) == 4
    assert (await asgi_api.http.get(resolutions[1]["url"])).content == got.content


async def test_audio_gets_duration_bitrate_format_and_a_128kbs_rendition(api: Api) -> None:
    file = await processed(api, "tone.wav", sound(), "audio/wav")
    audio = file["media"]["audio"]
    assert (audio["duration"], audio["format"]) == (1, "wav")
    assert audio["bitrate"] == pytest.approx(1_411_200, rel=0.01)
    assert [(a["assetKey"], a.get("format"), a.get("quality")) for a in audio["assets"]] == [
        ("src", "wav", None),
        ("128kbs.mp3", "mp3", "128kbs"),
    ]
    urls = await links(api, file["id"], "128kbs.mp3")
    rendition = await fetch(api, urls["128kbs.mp3"], "audio/mpeg")
    with av.open(io.BytesIO(rendition), "r") as container:
        (stream,) = container.streams.audio
        assert (container.format.name, stream.bit_rate, stream.channels) == ("mp3", 128_000, 2)
        assert container.duration is not None and 0.9 < container.duration / av.time_base < 1.2
    assert (await fetch(api, audio["assets"][1]["url"], "audio/mpeg")) == rendition


async def test_audio_no_larger_than_the_rendition_gets_none(asgi_api: Api) -> None:
    file = await processed(asgi_api, "small.mp3", sound("mp3", "libmp3lame", 64_000), "audio/mpeg")
    audio = file["media"]["audio"]
    assert (audio["format"], audio["duration"]) == ("mp3", 1)
    assert [a["assetKey"] for a in audio["assets"]] == ["src"]
    wrong = await asgi_api.call(
        "POST", "/files/generate-file-download-url", json={"fileId": file["id"], "assetKeys": ["src", "128kbs.mp3"]}
    )
    assert refused_keys(wrong) == ["src"]


async def test_a_pdf_gets_its_first_page_as_a_thumbnail(api: Api) -> None:
    file = await processed(api, "flyer.pdf", pdf(), "application/pdf")
    assert file["operationStatus"] == "READY"
    document = file["media"]["document"]
    thumbnail = document["thumbnail"]
    assert (thumbnail["width"], thumbnail["height"]) == (400, 267)
    assert file["thumbnailUrl"] == thumbnail["url"]
    page = decoded(await fetch(api, thumbnail["url"], "image/jpeg"))
    assert page.size == (400, 267)
    assert page.getpixel((200, 130)) == pytest.approx(RED, abs=40)
    urls = await links(api, file["id"], "preview")
    width, height = decoded(await fetch(api, urls["preview"], "image/jpeg")).size
    assert width == 800 and abs(height - 533) <= 1  # PDFium rounds the page's edge its own way


async def test_files_processing_has_nothing_to_do_for_are_ready_at_once(asgi_api: Api) -> None:
    text = await asgi_api.upload("notes.txt", b"plain words\n", "text/plain")
    assert text["operationStatus"] == "READY"
    wrong = await asgi_api.call(
        "POST", "/files/generate-file-download-url", json={"fileId": text["id"], "assetKeys": ["thumbnail"]}
    )
    assert refused_keys(wrong) == ["src"]


# --- what fails, fails alone --------------------------------------------------------------------


CORRUPT = {  # name, type, content, words the reason has
    "truncated jpeg": ("cut.jpg", "image/jpeg", jpeg()[:3000], "could not be decoded"),
    "decompression bomb": ("bomb.png", "image/png", bomb_png(40_000, 40_000), "too large"),
    "bomb under twice the bound": ("big.png", "image/png", bomb_png(10_000, 10_000), "too large"),
    "truncated video": ("cut.mp4", "video/mp4", video()[:1500], "could not be decoded"),
    "not a video": ("clip.mp4", "video/mp4", b"no video inside", "could not be decoded"),
    "not audio": ("song.mp3", "audio/mpeg", b"no audio inside", "could not be decoded"),
    "truncated pdf": ("cut.pdf", "application/pdf", pdf()[:200], "could not be read"),
}


@pytest.mark.parametrize("case", CORRUPT, ids=list(CORRUPT))
async def test_a_corrupt_file_fails_with_a_reason_and_the_library_keeps_serving(api: Api, case: str) -> None:
    name, mime, data, words = CORRUPT[case]
    file = await processed(api, name, data, mime)
    assert file["operationStatus"] == "FAILED"
    assert words in file["failureReason"], file["failureReason"]
    assert str(api.library.data.root) not in file["failureReason"]
    assert "media" not in file
    assert file["sizeInBytes"] == str(len(data))  # the bytes are kept: the original can still be downloaded
    assert (await fetch(api, (await links(api, file["id"], "src"))["src"], mime)) == data
    wrong = await api.call(
        "POST", "/files/generate-file-download-url", json={"fileId": file["id"], "assetKeys": ["thumbnail"]}
    )
    assert refused_keys(wrong) == ["src"]
    good = await processed(api, "fine.png", PNG_16x8, "image/png")
    assert good["operationStatus"] == "READY"


@pytest.mark.parametrize("limits", [ProcessingLimits(memory_bytes=64 << 20)])
async def test_a_worker_out_of_memory_fails_its_file_only(tuned_api: Api, limits: ProcessingLimits) -> None:
    big = Image.new("RGB", (3000, 3000), RED)  # 27 MB of pixels, and the worker has already used more than 64 MiB
    out = io.BytesIO()
    big.save(out, "PNG")
    file = await processed(tuned_api, "big.png", out.getvalue(), "image/png")
    assert file["operationStatus"] == "FAILED"
    assert file["failureReason"]
    tuned_api.library.processor.limits = replace(limits, memory_bytes=2 << 30)  # the next worker has room
    assert (await processed(tuned_api, "fine.png", PNG_16x8, "image/png"))["operationStatus"] == "READY"


@pytest.mark.parametrize("limits", [ProcessingLimits(timeout_seconds=0.001)])
async def test_a_file_past_its_time_fails_and_its_worker_is_replaced(tuned_api: Api, limits: ProcessingLimits) -> None:
    file = await processed(tuned_api, "slow.jpg", jpeg(), "image/jpeg")
    assert (file["operationStatus"], file["failureReason"]) == ("FAILED", "processing took longer than 0.001 s")
    tuned_api.library.processor.limits = replace(limits, timeout_seconds=60)
    assert (await processed(tuned_api, "fine.png", PNG_16x8, "image/png"))["operationStatus"] == "READY"


async def test_the_processing_timeout_is_a_setting(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIA_MCP_LIBRARY_PROCESSING_TIMEOUT_SECONDS", "0.001")
    monkeypatch.setenv("MEDIA_MCP_LIBRARY_PROCESSING_WORKERS", "1")
    with Library.open(LibrarySettings(data_dir=tmp_path / "set"), clock=clock) as lib:
        async with serving(lib) as api:
            file = await processed(api, "slow.jpg", jpeg(), "image/jpeg")
    assert (file["operationStatus"], file["failureReason"]) == ("FAILED", "processing took longer than 0.001 s")


# --- when the answer comes, and what survives --------------------------------------------------------


@pytest.mark.parametrize("limits", [ProcessingLimits(answer_within_seconds=WAIT)])
async def test_an_upload_answers_once_a_quick_processing_is_done(tuned_api: Api) -> None:
    file = await tuned_api.upload("quick.jpg", jpeg(), "image/jpeg")  # not settled: the answer itself
    assert file["operationStatus"] == "READY"
    assert file["media"]["image"]["previewImage"]["width"] == 800


@pytest.mark.parametrize("limits", [ProcessingLimits(answer_within_seconds=0)])
async def test_an_upload_answers_pending_past_its_wait(tuned_api: Api) -> None:
    file = await tuned_api.upload("later.jpg", jpeg(), "image/jpeg")
    assert file["operationStatus"] == "PENDING"
    assert "media" not in file
    assert file["thumbnailUrl"].endswith("/static/icons/image.svg")
    assert file["sizeInBytes"] == str(len(jpeg()))  # the bytes are stored already
    wrong = await tuned_api.call(
        "POST", "/files/generate-file-download-url", json={"fileId": file["id"], "assetKeys": ["preview"]}
    )
    assert refused_keys(wrong) == ["src"]
    assert (await described(tuned_api, file["id"]))["operationStatus"] == "READY"


async def test_an_imported_image_is_processed_too(library: Library) -> None:
    def web(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=jpeg(), headers={"content-type": "image/jpeg"})

    async with serving(library, httpx.MockTransport(web)) as api:
        started = await api.ok("POST", "/files/import", json={"url": "http://cdn.example/poster.jpg"})
        assert started["file"]["operationStatus"] == "PENDING"
        file = await described(api, started["file"]["id"])
    assert file["operationStatus"] == "READY"
    assert file["media"]["image"]["previewImage"]["width"] == 800


async def test_processing_cut_short_by_a_stop_resumes_at_the_next_start(
    settings: LibrarySettings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(file_id: str) -> Future[None]:  # the library stops before it gets to the file
        job: Future[None] = Future()
        job.set_result(None)
        return job

    with Library.open(settings, clock=clock) as first:
        monkeypatch.setattr(first.processor, "submit", never)
        async with serving(first) as api:
            waiting = await api.upload("late.jpg", jpeg(), "image/jpeg")
            assert (await described(api, waiting["id"]))["operationStatus"] == "PENDING"
    with Library.open(settings, clock=clock) as second:
        async with serving(second) as api:
            file = await described(api, waiting["id"])
    assert file["operationStatus"] == "READY"
    assert file["media"]["image"]["previewImage"]["width"] == 800


async def test_processing_again_replaces_the_assets_and_never_adds(asgi_api: Api) -> None:
    lib = asgi_api.library
    first = await processed(asgi_api, "twice.jpg", jpeg(), "image/jpeg")
    blobs = lib.blobs.all_keys()
    assert len(blobs) == 3
    with lib.db.tx() as conn:  # as if a stop had come between the record and the answer
        conn.execute("UPDATE files SET status = 'PENDING' WHERE id = ?", (first["id"],))
    lib.processor.submit(first["id"])
    again = await described(asgi_api, first["id"])
    assert (again["media"], again["thumbnailUrl"]) == (first["media"], first["thumbnailUrl"])
    assert len(lib.blobs.all_keys()) == 3 and lib.blobs.all_keys() != blobs  # new copies, the old ones gone
    assert lib.blobs.all_keys() == lib.catalog.blob_keys()


async def test_deleting_a_file_for_good_deletes_its_assets(api: Api) -> None:
    file = await processed(api, "gone.jpg", jpeg(), "image/jpeg")
    assert len(api.library.blobs.all_keys()) == 3
    await api.ok("POST", "/bulk/files/delete", json={"fileIds": [file["id"]], "permanent": True})
    assert api.library.blobs.all_keys() == set()
    assert api.library.outcomes.asset(file["id"], "thumbnail") is None
    assert (await api.http.get(file["thumbnailUrl"])).status_code == 404


async def test_a_private_files_assets_leave_only_through_download_links(api: Api) -> None:
    file = await processed(api, "secret.jpg", jpeg(), "image/jpeg", private=True)
    media = file["media"]["image"]
    assert media["image"]["url"] == media["previewImage"]["url"] == ""
    assert file["thumbnailUrl"].endswith("/static/icons/image.svg")
    asset = f"{file['url'].replace('/static/media/', '/static/assets/')}/thumbnail"
    assert (await api.http.get(asset)).status_code == 403
    urls = await links(api, file["id"], "thumbnail")
    assert decoded(await fetch(api, urls["thumbnail"], "image/jpeg")).size == (400, 267)
