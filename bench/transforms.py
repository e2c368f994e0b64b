"""Wix image URLs on the embedded library: latency of an uncached and a cached variant of a large JPEG.

A ``media-mcp library`` subprocess on 127.0.0.1 gets one generated photo-like JPEG (4000x3000 by default)
through a minted upload URL; then, over HTTP and interleaved round by round:

* uncached: ``/v1/fill/w_800,h_<n>,al_c,q_90/photo.jpg`` with a new ``h_`` each call, so each is rendered
  (the answer's ``X-Cache: MISS`` is checked);
* cached: one such variant, rendered once before timing, then served from the disk cache (``X-Cache: HIT``);
* baseline: the plain static URL of the original, the bytes a site would otherwise send.

Pillow drawing the same variant in this process (open, JPEG draft, resize, encode; no HTTP, no disk cache) is
timed too, so the uncached figure can be read as render time plus the library's own overhead.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from bench import results_file
from bench.library import API, LibraryServer

HELP = "Wix image URLs: latency of an uncached and a cached /v1/fill variant of a 4000x3000 JPEG vs the original"
DESCRIPTION = __doc__

RESULTS = Path(__file__).resolve().parent / "results" / "transforms.json"
TARGET_CACHED_RATIO = 0.1
"""A cached variant answers in at most a tenth of the time a render takes."""
TARGET_OVERHEAD_RATIO = 1.5
"""An uncached variant costs at most 1.5x Pillow drawing it in-process (HTTP, lookup, cache write included)."""
FILL = "/v1/fill/w_800,h_{h},al_c,q_90/photo.jpg"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calls", type=int, default=25, help="timed calls of each kind (median reported; default 25)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls of each kind first (default 3)")
    parser.add_argument("--width", type=int, default=4000, help="width of the generated JPEG (default 4000)")
    parser.add_argument("--height", type=int, default=3000, help="height of the generated JPEG (default 3000)")
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()), help="where the library's data directory goes"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    parser.add_argument("--keep", action="store_true", help="keep the work directory for inspection")


@dataclass
class Stats:
    calls: int
    median_ms: float
    min_ms: float
    max_ms: float
    bytes: int

    @classmethod
    def of(cls, seconds: list[float], size: int) -> Stats:
        ms = [s * 1000 for s in seconds]
        return cls(len(ms), round(statistics.median(ms), 2), round(min(ms), 2), round(max(ms), 2), size)


@dataclass
class Results:
    source: str
    source_bytes: int
    variant: str
    original: Stats
    uncached: Stats
    cached: Stats
    pillow_in_process: Stats


@dataclass
class Check:
    name: str
    value: float
    target: str
    passed: bool


def make_photo(width: int, height: int) -> bytes:
    """A photo-like JPEG: gradients under sensor-like grain, about as large as a camera picture of that size."""
    ramp = Image.linear_gradient("L")
    grain = Image.effect_noise((width, height), 30)
    bands = [
        Image.blend(ramp.resize((width, height)), grain, 0.3),
        ramp.rotate(90).resize((width, height)),
        Image.blend(ramp.rotate(45).resize((width, height)), grain, 0.5),
    ]
    out = io.BytesIO()
    Image.merge("RGB", bands).save(out, "JPEG", quality=90)
    return out.getvalue()


def upload(client: httpx.Client, server: LibraryServer, data: bytes) -> str:
    minted = client.post(
        f"{server.base}{API}/files/generate-upload-url",
        json={"mimeType": "image/jpeg", "fileName": "photo.jpg"},
        headers={"Authorization": server.api_key},
    )
    minted.raise_for_status()
    stored = client.put(minted.json()["uploadUrl"], content=data, headers={"Content-Type": "image/jpeg"})
    stored.raise_for_status()
    url: str = stored.json()["file"]["url"]
    return url


def timed_get(client: httpx.Client, url: str, cache: str | None) -> tuple[float, int]:
    start = time.perf_counter()
    response = client.get(url)
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}: {response.text[:300]}")
    if cache is not None and response.headers.get("x-cache") != cache:
        raise RuntimeError(f"GET {url} was {response.headers.get('x-cache')}, expected {cache}")
    return elapsed, len(response.content)


def pillow_fill(data: bytes, width: int, height: int) -> tuple[float, int]:
    """The same variant drawn by Pillow alone: what rendering costs without the library around it."""
    start = time.perf_counter()
    with Image.open(io.BytesIO(data)) as img:
        scale = max(width / img.width, height / img.height)
        img.draft("RGB", (round(img.width * scale), round(img.height * scale)))
        w, h = img.size
        cover = max(width / w, height / h)
        bw, bh = min(w, width / cover), min(h, height / cover)
        box = ((w - bw) / 2, (h - bh) / 2, (w + bw) / 2, (h + bh) / 2)
        out = io.BytesIO()
        img.resize((width, height), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0).save(out, "JPEG", quality=90)
    return time.perf_counter() - start, len(out.getvalue())


def bench(work: Path, width: int, height: int, calls: int, warmup: int) -> Results:
    data = make_photo(width, height)
    with (
        LibraryServer(work / "data", work / "library.log") as server,
        httpx.Client(trust_env=False, timeout=120.0) as client,
    ):
        url = upload(client, server, data)
        cached_url = url + FILL.format(h=600)
        timed_get(client, cached_url, "MISS")
        samples: dict[str, list[float]] = {"original": [], "uncached": [], "cached": [], "pillow": []}
        sizes: dict[str, int] = {}
        for i in range(warmup + calls):
            rounds: dict[str, Callable[[], tuple[float, int]]] = {
                "original": partial(timed_get, client, url, None),
                "uncached": partial(timed_get, client, url + FILL.format(h=601 + i), "MISS"),
                "cached": partial(timed_get, client, cached_url, "HIT"),
                "pillow": partial(pillow_fill, data, 800, 601 + i),
            }
            for kind, measure in rounds.items():
                seconds, sizes[kind] = measure()
                if i >= warmup:
                    samples[kind].append(seconds)
    return Results(
        source=f"{width}x{height} JPEG, quality 90",
        source_bytes=len(data),
        variant=FILL.format(h="600+n"),
        original=Stats.of(samples["original"], sizes["original"]),
        uncached=Stats.of(samples["uncached"], sizes["uncached"]),
        cached=Stats.of(samples["cached"], sizes["cached"]),
        pillow_in_process=Stats.of(samples["pillow"], sizes["pillow"]),
    )


def _checks(r: Results) -> list[Check]:
    cached = r.cached.median_ms / r.uncached.median_ms
    overhead = r.uncached.median_ms / r.pillow_in_process.median_ms
    return [
        Check("cached / uncached variant (median)", round(cached, 3), f"<= {TARGET_CACHED_RATIO}",
              cached <= TARGET_CACHED_RATIO),
        Check("uncached variant / Pillow in-process (median)", round(overhead, 2), f"<= {TARGET_OVERHEAD_RATIO}",
              overhead <= TARGET_OVERHEAD_RATIO),
    ]  # fmt: skip


def _environment() -> dict[str, Any]:
    return results_file.environment("pillow")


def _report(r: Results, checks: list[Check]) -> str:
    out = [
        f"## Wix image URLs: {r.source} ({r.source_bytes / 1e6:.1f} MB), variant {r.variant}\n",
        "| request | median ms | min ms | max ms | bytes |",
        "|---|---:|---:|---:|---:|",
    ]
    rows = {
        "original (plain static URL)": r.original,
        "variant, uncached (rendered)": r.uncached,
        "variant, cached": r.cached,
        "Pillow in-process, same variant": r.pillow_in_process,
    }
    for name, s in rows.items():
        out.append(f"| {name} | {s.median_ms:.2f} | {s.min_ms:.2f} | {s.max_ms:.2f} | {s.bytes:,} |")
    out.append("\n| check | value | target | result |\n|---|---:|---|---|")
    out.extend(f"| {c.name} | {c.value} | {c.target} | {'PASS' if c.passed else 'FAIL'} |" for c in checks)
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    if args.calls < 1 or args.warmup < 0 or args.width < 1 or args.height < 1:
        print("--calls, --width and --height must be positive; --warmup not negative", file=sys.stderr)
        return 2
    args.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="media-mcp-bench-transforms-", dir=args.work_dir))
    began = time.time()
    env = _environment()
    try:
        results = bench(work, args.width, args.height, args.calls, args.warmup)
    finally:
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    checks = _checks(results)
    env["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    document = results_file.write(args, "transforms", began, env, {"results": results}, checks)
    print(_report(results, checks))
    print(f"\nresults written to {args.output} ({document['duration_seconds']:.0f}s)")
    return 0 if document["all_passed"] else 1
