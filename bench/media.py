"""Media processing and previews: what the embedded library does with a camera photo, and what a preview costs.

* processing: a generated 24-megapixel JPEG (6000x4000) through `media_mcp.library.processing.process` (what a
  worker runs for an upload: size, colours, an 800 px preview and a 400 px thumbnail), against Pillow's own
  ``thumbnail()`` to 400 px with JPEG draft mode, in this process, interleaved; then the same photo uploaded to an
  embedded library (in process, over its ASGI app) from the minted link to ``READY``, worker and all.
* previews: eight photo-like JPEGs (1600x1200) on an embedded library, and ``preview_files`` over all eight through
  the SDK ``Client``: the answer's size as JSON-RPC sends it (images base64-encoded), the images' own bytes, and the
  call's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.metadata
import io
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from bench import results_file
from bench.transforms import make_photo

HELP = "media processing of a 24 MP JPEG vs Pillow's thumbnail(), and the size of a preview_files answer for 8 photos"
DESCRIPTION = __doc__

RESULTS = Path(__file__).resolve().parent / "results" / "media.json"
TARGET_PROCESSING_RATIO = 3.0
"""Processing (preview, thumbnail and colours) within 3x of Pillow making the thumbnail alone."""
TARGET_PREVIEW_BYTES = 200_000
"""A preview of eight photos at the default size: at most 200 KB on the wire (the budget allows 400 KB of images)."""
PREVIEW_FILES = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each kind (median reported; default 7)")
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()), help="where the data directories go"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")


@dataclass
class Timing:
    runs: int
    median_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Timing:
        ms = [s * 1000 for s in seconds]
        return cls(len(ms), round(statistics.median(ms), 1), round(min(ms), 1), round(max(ms), 1))


@dataclass
class Processing:
    source: str
    source_bytes: int
    process: Timing
    pillow_thumbnail: Timing
    upload_to_ready: Timing
    ratio: float


@dataclass
class Previews:
    files: int
    size_px: int
    answer_bytes: int
    image_bytes: int
    largest_image_bytes: int
    call: Timing


@dataclass
class Check:
    name: str
    value: float
    target: str
    passed: bool


def _pillow_thumbnail(source: Path, out: Path) -> None:
    with Image.open(source) as image:
        image.draft("RGB", (400, 400))
        image.thumbnail((400, 400))
        image.save(out, "JPEG", quality=85)


def _processing(work: Path, runs: int) -> Processing:
    from media_mcp.library import processing

    photo = make_photo(6000, 4000)
    source = work / "photo.jpg"
    source.write_bytes(photo)
    timed: dict[str, list[float]] = {"process": [], "pillow": []}
    for n in range(runs + 1):  # the first of each warms the decoders' caches, untimed
        out = work / f"out-{n}"
        out.mkdir()
        start = time.perf_counter()
        processing.process(source, "IMAGE", "image/jpeg", out)
        process = time.perf_counter() - start
        start = time.perf_counter()
        _pillow_thumbnail(source, work / f"pillow-{n}.jpg")
        pillow = time.perf_counter() - start
        if n:
            timed["process"].append(process)
            timed["pillow"].append(pillow)
    ready = asyncio.run(_upload_to_ready(work, photo, runs))
    process_t, pillow_t = Timing.of(timed["process"]), Timing.of(timed["pillow"])
    return Processing(
        source="6000x4000 JPEG, quality 90",
        source_bytes=len(photo),
        process=process_t,
        pillow_thumbnail=pillow_t,
        upload_to_ready=ready,
        ratio=round(process_t.median_ms / pillow_t.median_ms, 2),
    )


async def _upload_to_ready(work: Path, photo: bytes, runs: int) -> Timing:
    from media_mcp.library.app import create_app
    from media_mcp.library.service import Library
    from media_mcp.settings import LibrarySettings

    seconds = []
    with Library.open(LibrarySettings(data_dir=work / "library")) as lib:
        headers = {"Authorization": lib.api_key, "wix-site-id": lib.site_id}
        transport = httpx.ASGITransport(app=create_app(lib))
        async with httpx.AsyncClient(transport=transport, base_url="http://library.test", timeout=120) as http:
            for n in range(runs + 1):
                minted = await http.post(
                    "/site-media/v1/files/generate-upload-url",
                    json={"mimeType": "image/jpeg", "fileName": f"photo-{n}.jpg"},
                    headers=headers,
                )
                minted.raise_for_status()
                start = time.perf_counter()
                stored = await http.put(
                    minted.json()["uploadUrl"], content=photo, headers={"Content-Type": "image/jpeg"}
                )
                stored.raise_for_status()
                file_id = stored.json()["file"]["id"]
                status = await _status(http, headers, file_id)
                while status == "PENDING":
                    await asyncio.sleep(0.02)
                    status = await _status(http, headers, file_id)
                if status != "READY":
                    raise RuntimeError(f"the photo ended {status}")
                if n:
                    seconds.append(time.perf_counter() - start)
    return Timing.of(seconds)


async def _status(http: httpx.AsyncClient, headers: dict[str, str], file_id: str) -> str:
    got = await http.get("/site-media/v1/files/get-file-by-id", params={"fileId": file_id}, headers=headers)
    got.raise_for_status()
    status: str = got.json()["file"]["operationStatus"]
    return status


async def _previews(work: Path, runs: int) -> Previews:
    from mcp import Client
    from pydantic import SecretStr

    from media_mcp.guard import StaticBackend
    from media_mcp.library.app import create_app
    from media_mcp.library.service import Library
    from media_mcp.server.app import create_server
    from media_mcp.settings import LibrarySettings, ServerSettings
    from media_mcp.wix import messages as msg
    from media_mcp.wix.auth import ApiKeyAuth
    from media_mcp.wix.client import WixMediaClient

    with Library.open(LibrarySettings(data_dir=work / "previews")) as lib:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(lib)))
        wix = WixMediaClient("http://library.test", ApiKeyAuth(SecretStr(lib.api_key), lib.site_id), http=http)
        ids = []
        for n in range(PREVIEW_FILES):
            path = work / f"photo-{n}.jpg"
            path.write_bytes(make_photo(1600, 1200))
            url = await wix.generate_upload_url(
                msg.GenerateFileUploadUrlRequest(mime_type="image/jpeg", file_name=path.name)
            )
            ids.append((await wix.upload(url, path, mime_type="image/jpeg")).id)
        await lib.settle()
        server = create_server(ServerSettings(), StaticBackend(wix, "local"), data_dir=work / "server")
        seconds = []
        async with Client(server, mode="legacy") as client:
            for n in range(runs + 1):
                start = time.perf_counter()
                result = await client.call_tool("preview_files", {"file_ids": ids})
                if n:
                    seconds.append(time.perf_counter() - start)
        await http.aclose()
    images = [base64.b64decode(b.data) for b in result.content if b.type == "image"]
    if result.is_error or len(images) != PREVIEW_FILES:
        raise RuntimeError(f"preview_files answered {len(images)} images: {result.content[0]}")
    for data in images:
        Image.open(io.BytesIO(data)).verify()
    return Previews(
        files=PREVIEW_FILES,
        size_px=256,
        answer_bytes=len(result.model_dump_json(by_alias=True, exclude_none=True)),
        image_bytes=sum(len(d) for d in images),
        largest_image_bytes=max(len(d) for d in images),
        call=Timing.of(seconds),
    )


def _checks(p: Processing, v: Previews) -> list[Check]:
    return [
        Check("processing / Pillow thumbnail (median)", p.ratio, f"<= {TARGET_PROCESSING_RATIO}",
              p.ratio <= TARGET_PROCESSING_RATIO),
        Check("preview_files answer for 8 photos, bytes", v.answer_bytes, f"<= {TARGET_PREVIEW_BYTES}",
              v.answer_bytes <= TARGET_PREVIEW_BYTES),
    ]  # fmt: skip


def _report(p: Processing, v: Previews, checks: list[Check]) -> str:
    out = [
        f"## Processing a {p.source} ({p.source_bytes / 1e6:.1f} MB)\n",
        "| step | median ms | min ms | max ms |",
        "|---|---:|---:|---:|",
        f"| processing (preview, thumbnail, colours) | {p.process.median_ms} | {p.process.min_ms} | "
        f"{p.process.max_ms} |",
        f"| Pillow thumbnail() with draft | {p.pillow_thumbnail.median_ms} | {p.pillow_thumbnail.min_ms} | "
        f"{p.pillow_thumbnail.max_ms} |",
        f"| upload to READY, embedded library | {p.upload_to_ready.median_ms} | {p.upload_to_ready.min_ms} | "
        f"{p.upload_to_ready.max_ms} |",
        f"\n## preview_files of {v.files} photos (1600x1200) at {v.size_px} px\n",
        f"answer {v.answer_bytes:,} bytes on the wire; images {v.image_bytes:,} bytes "
        f"(largest {v.largest_image_bytes:,}); call median {v.call.median_ms} ms",
        "\n| check | value | target | result |\n|---|---:|---|---|",
    ]
    out.extend(f"| {c.name} | {c.value} | {c.target} | {'PASS' if c.passed else 'FAIL'} |" for c in checks)
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    if args.runs < 1:
        print("--runs must be positive", file=sys.stderr)
        return 2
    args.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="media-mcp-bench-media-", dir=args.work_dir))
    began = time.time()
    env: dict[str, Any] = {
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "pillow": importlib.metadata.version("pillow"),
    }
    try:
        processed = _processing(work, args.runs)
        previews = asyncio.run(_previews(work, args.runs))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    checks = _checks(processed, previews)
    env["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    document = results_file.write(args, "media", began, env, {"processing": processed, "previews": previews}, checks)
    print(_report(processed, previews, checks))
    print(f"\nresults written to {args.output} ({document['duration_seconds']:.0f}s)")
    return 0 if document["all_passed"] else 1
