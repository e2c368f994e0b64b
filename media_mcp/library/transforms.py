"""Wix image URLs: ``/static/media/<id>/v1/{fill,fit,crop}/<params>/<name>`` rendered with Pillow and cached on disk.

The syntax and its semantics follow Wix's "URL-Based Image Transformation Reference" (``fit`` never enlarges;
``fill`` is exactly W×H, covered then cropped by ``al_`` gravity; ``crop`` is a region of the original). Only
public images are transformed; a private file is 403 and an unknown one 404, as on the plain static URL, and any
parameter Wix would refuse is 400. The last path segment only picks the output format by its extension: it is never
used as a path.

Rendering runs on anyio's worker threads, at most `RENDER_THREADS` at once, never on the store's: a slow render
cannot hold up the catalog. Sources above `MAX_SOURCE_PIXELS` are refused before they are decoded, and JPEGs are
decoded at a reduced scale (draft mode) when the result is smaller. Variants are kept in ``variants/`` under the
data directory (`variants.VariantCache`), named by a hash of the file's id, blob and content hash plus the normalized
parameters, so a file that is replaced or removed never serves an old variant; the least recently used go once the
cache outgrows its bound (`LibrarySettings.library_transform_cache_bytes`). Concurrent requests for one variant
render it once.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from PIL import ExifTags, Image, ImageFilter, ImageOps, UnidentifiedImageError
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from media_mcp.library.db import in_thread
from media_mcp.library.errors import ApiError
from media_mcp.library.service import parse_file_id
from media_mcp.library.variants import VariantCache
from media_mcp.library.web import library
from media_mcp.wix.models import MediaType, OperationStatus

log = logging.getLogger("media_mcp.library")

ROUTE = "/static/media/{file_id}/v1/{method}/{params}/{name:path}"
"""Where transformations are answered; ``name`` may hold slashes (only its last extension counts)."""
MAX_SIDE = 5000
"""Largest width or height a transformation may ask for (Wix: 1-5000)."""
MAX_SOURCE_PIXELS = 50_000_000
"""Largest original transformed: a bigger one is refused from its header, before any pixel is decoded."""
DEFAULT_QUALITY = 85
"""JPEG and WebP quality when the URL has no ``q_``."""
RENDER_THREADS = max(1, min(4, os.cpu_count() or 1))
"""Renders at once per event loop; each holds a decoded image, so this bounds their memory too."""
RENDER_VERSION = "1"
"""Part of every variant's name: changing how variants are drawn makes the old ones unreachable (then evicted)."""

_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}
_CACHE_CONTROL = "public, max-age=3600"
_PARAM = re.compile(r"^([a-z]+)_(.+)$")
_INT = re.compile(r"^[0-9]{1,9}$")
_NUMBER = r"([0-9]{1,3}(?:\.[0-9]{1,4})?)"
_USM = re.compile(rf"^{_NUMBER}_{_NUMBER}_{_NUMBER}$")
_ENC = re.compile(r"^[a-z0-9]{1,12}$")
_GRAVITY = {
    "c": (0.5, 0.5),
    "t": (0.5, 0.0),
    "b": (0.5, 1.0),
    "l": (0.0, 0.5),
    "r": (1.0, 0.5),
    "tl": (0.0, 0.0),
    "tr": (1.0, 0.0),
    "bl": (0.0, 1.0),
    "br": (1.0, 1.0),
}
_ALLOWED = {
    "fill": ("w", "h", "al", "q", "usm", "enc"),
    "fit": ("w", "h", "al", "q", "usm", "enc"),
    "crop": ("x", "y", "w", "h", "q", "usm", "enc"),
}
"""``usm_`` (unsharp mask) and ``enc_`` appear in the URLs Wix's image-kit builds; ``enc_`` is accepted and ignored,
since the extension picks the format. ``al_`` has no effect on ``fit``, which keeps the whole image."""
_DECODERS = ("JPEG", "PNG", "GIF", "WEBP", "AVIF", "TIFF", "BMP")
"""The only formats Pillow may read here: the raster images uploads accept, never EPS (Ghostscript) and the like."""
_ROTATED = {5, 6, 7, 8}
"""EXIF orientations that swap width and height."""


@dataclass(frozen=True)
class Format:
    pil: str
    media_type: str
    ext: str
    lossy: bool


_FORMATS = {
    "jpg": Format("JPEG", "image/jpeg", "jpg", True),
    "jpeg": Format("JPEG", "image/jpeg", "jpg", True),
    "png": Format("PNG", "image/png", "png", False),
    "webp": Format("WEBP", "image/webp", "webp", True),
    "gif": Format("GIF", "image/gif", "gif", False),
}


@dataclass(frozen=True)
class Spec:
    """One transformation, normalized: equal specs draw equal images."""

    method: str
    width: int
    height: int
    fmt: Format
    x: int = 0
    y: int = 0
    align: str = "c"
    quality: int | None = None
    usm: tuple[float, float, float] | None = None

    def canonical(self) -> str:
        parts = [f"w_{self.width}", f"h_{self.height}"]
        if self.method == "crop":
            parts[:0] = [f"x_{self.x}", f"y_{self.y}"]
        if self.method == "fill":
            parts.append(f"al_{self.align}")
        if self.quality is not None:
            parts.append(f"q_{self.quality}")
        if self.usm is not None:
            parts.append("usm_{:g}_{:g}_{:g}".format(*self.usm))
        return f"{self.method}/{','.join(parts)}/{self.fmt.ext}"


def _bad(message: str) -> ApiError:
    return ApiError(400, "INVALID_IMAGE_TRANSFORMATION", message)


def _int(key: str, raw: str, low: int, high: int) -> int:
    if not _INT.match(raw) or not low <= int(raw) <= high:
        raise _bad(f"{key}_ must be a whole number from {low} to {high}, not {raw!r}")
    return int(raw)


def _usm(raw: str) -> tuple[float, float, float]:
    found = _USM.match(raw)
    if found is None:
        raise _bad(f"usm_ must be <amount>_<radius>_<threshold>, such as usm_0.66_1.00_0.01, not {raw!r}")
    amount, radius, threshold = (float(found.group(i)) for i in (1, 2, 3))
    if amount > 5 or radius > 128 or threshold > 1:
        raise _bad("usm_ takes an amount of 0-5, a radius of 0-128 and a threshold of 0-1")
    return amount, radius, threshold


def parse_spec(method: str, params: str, name: str) -> Spec:
    """The transformation a URL asks for, or `ApiError` 400 saying what is wrong with it."""
    if method not in _ALLOWED:
        raise _bad(f"unknown transformation {method[:20]!r}: use fill, fit or crop")
    ext = name.rsplit("/", 1)[-1].rpartition(".")[2].lower() if "." in name.rsplit("/", 1)[-1] else ""
    fmt = _FORMATS.get(ext)
    if fmt is None:
        raise _bad("the file name must end in .jpg, .jpeg, .png, .webp or .gif: its extension picks the format")
    if len(params) > 200:
        raise _bad("the transformation parameters are too long")
    given: dict[str, str] = {}
    for item in params.split(","):
        found = _PARAM.match(item)
        if found is None:
            raise _bad(f"malformed parameter {item[:20]!r}: expected <name>_<value>, such as w_300")
        key, value = found.groups()
        if key not in _ALLOWED[method]:
            allowed = ", ".join(f"{k}_" for k in _ALLOWED[method])
            raise _bad(f"parameter {key[:10]}_ is not supported by {method} (it takes {allowed})")
        if key in given:
            raise _bad(f"parameter {key}_ is given twice")
        given[key] = value
    required = ("x", "y", "w", "h") if method == "crop" else ("w", "h")
    if missing := [f"{k}_" for k in required if k not in given]:
        raise _bad(f"{method} needs {', '.join(f'{k}_' for k in required)}; missing {', '.join(missing)}")
    align = given.get("al", "c")
    if align not in _GRAVITY:
        raise _bad(f"al_ must be one of {', '.join(_GRAVITY)}, not {align[:10]!r}")
    if "enc" in given and not _ENC.match(given["enc"]):
        raise _bad(f"enc_ must be a short encoding name such as enc_auto, not {given['enc'][:20]!r}")
    quality = _int("q", given["q"], 1, 100) if "q" in given else None
    return Spec(
        method=method,
        width=_int("w", given["w"], 1, MAX_SIDE),
        height=_int("h", given["h"], 1, MAX_SIDE),
        fmt=fmt,
        x=_int("x", given["x"], 0, 10**9) if method == "crop" else 0,
        y=_int("y", given["y"], 0, 10**9) if method == "crop" else 0,
        align=align if method == "fill" else "c",
        quality=(quality or DEFAULT_QUALITY) if fmt.lossy else None,
        usm=_usm(given["usm"]) if "usm" in given else None,
    )


# --- rendering ---------------------------------------------------------------------------------


@functools.cache
def _decoders() -> tuple[str, ...]:
    Image.init()
    return tuple(name for name in _DECODERS if name in Image.OPEN)  # AVIF only where Pillow was built with it


def _oriented_size(img: Image.Image) -> tuple[tuple[int, int], bool]:
    """The image's size as it is shown (after its EXIF orientation), and whether that swaps the stored size."""
    orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    swapped = orientation in _ROTATED
    w, h = img.size
    return ((h, w) if swapped else (w, h)), swapped


def _draft(img: Image.Image, want: tuple[int, int], swapped: bool) -> None:
    """Let a JPEG decode at 1/2, 1/4 or 1/8 scale when ``want`` (shown orientation) still fits in that."""
    if img.format == "JPEG":
        img.draft(None, (want[1], want[0]) if swapped else want)


def _normalize_mode(img: Image.Image) -> Image.Image:
    """A mode every resample and encoder handles: L, LA, RGB or RGBA."""
    if img.mode in ("L", "LA", "RGB", "RGBA"):
        return img
    return img.convert("RGBA" if img.has_transparency_data else "RGB")


def _geometry(spec: Spec, img: Image.Image, shown: tuple[int, int]) -> Image.Image:
    """Apply the method to a loaded, upright image whose full-scale size is ``shown``."""
    sw, sh = shown
    aw, ah = img.size  # smaller than ``shown`` when the JPEG was drafted
    if spec.method == "fit":
        scale = min(spec.width / sw, spec.height / sh, 1.0)
        size = (max(1, round(sw * scale)), max(1, round(sh * scale)))
        return img if size == img.size else img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if spec.method == "fill":
        cover = max(spec.width / aw, spec.height / ah)
        bw, bh = min(aw, spec.width / cover), min(ah, spec.height / cover)
        fx, fy = _GRAVITY[spec.align]
        left, top = fx * (aw - bw), fy * (ah - bh)
        box = (left, top, left + bw, top + bh)
        return img.resize((spec.width, spec.height), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    return img.crop((spec.x, spec.y, spec.x + spec.width, spec.y + spec.height))


def _flatten(img: Image.Image) -> Image.Image:
    """JPEG has no alpha: transparent pixels go on white."""
    if img.mode not in ("LA", "RGBA"):
        return img
    background = Image.new(img.mode[:-1], img.size, 255 if img.mode == "LA" else (255, 255, 255))
    background.paste(img, mask=img.getchannel("A"))
    return background


def _encode(img: Image.Image, spec: Spec) -> bytes:
    if spec.usm is not None:
        amount, radius, threshold = spec.usm
        img = img.filter(ImageFilter.UnsharpMask(radius, round(amount * 100), round(threshold * 255)))
    buffer = io.BytesIO()
    if spec.fmt.pil == "JPEG":
        _flatten(img).save(buffer, "JPEG", quality=spec.quality)
    elif spec.fmt.pil == "WEBP":
        img.save(buffer, "WEBP", quality=spec.quality)
    else:
        img.save(buffer, spec.fmt.pil)
    return buffer.getvalue()


def _too_large(width: int, height: int) -> ApiError:
    limit = MAX_SOURCE_PIXELS // 1_000_000
    message = f"the image has {width}x{height} pixels; only images up to {limit} megapixels are transformed"
    return ApiError(400, "IMAGE_TOO_LARGE", message)


def render(source: Path, spec: Spec) -> bytes:
    """Draw ``spec`` from the image at ``source``: the encoded bytes, or `ApiError` (400 bad source, 404 gone)."""
    try:
        with Image.open(source, formats=_decoders()) as img:
            if img.width * img.height > MAX_SOURCE_PIXELS:
                raise _too_large(img.width, img.height)
            shown, swapped = _oriented_size(img)
            if spec.method == "crop" and (spec.x + spec.width > shown[0] or spec.y + spec.height > shown[1]):
                region = f"x_{spec.x},y_{spec.y},w_{spec.width},h_{spec.height}"
                raise _bad(f"the crop region {region} lies outside the {shown[0]}x{shown[1]} image")
            if spec.method == "fit":
                scale = min(spec.width / shown[0], spec.height / shown[1], 1.0)
                _draft(img, (math.ceil(shown[0] * scale), math.ceil(shown[1] * scale)), swapped)
            elif spec.method == "fill":
                cover = max(spec.width / shown[0], spec.height / shown[1])
                _draft(img, (math.ceil(shown[0] * cover), math.ceil(shown[1] * cover)), swapped)
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
            return _encode(_geometry(spec, _normalize_mode(img), shown), spec)
    except FileNotFoundError as exc:  # removed for good while this request ran
        raise ApiError(404, "NOT_FOUND", "no such file") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ApiError(400, "IMAGE_TOO_LARGE", "the image has too many pixels to be transformed") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        log.info("cannot transform %s: %s", source.name, exc)  # the message may hold the blob's path: not sent
        message = "the file cannot be decoded as an image: it is damaged, or in a format that is not transformed"
        raise ApiError(400, "UNSUPPORTED_IMAGE", message) from exc


_render_threads: RunVar[anyio.CapacityLimiter] = RunVar("media_mcp_render_threads")


def _render_limiter() -> anyio.CapacityLimiter:
    try:
        return _render_threads.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(RENDER_THREADS)
        _render_threads.set(limiter)
        return limiter


def _produce(cache: VariantCache, path: Path, source: Path, spec: Spec) -> bytes | os.stat_result:
    """The variant: its stat if another render cached it meanwhile, else freshly rendered bytes (then cached)."""
    if (found := cache.lookup(path)) is not None:
        return found
    data = render(source, spec)
    cache.store(path, data)
    return data


def _cache(request: Request) -> VariantCache:
    state = request.app.state
    cache: VariantCache | None = getattr(state, "variant_cache", None)
    if cache is None:
        lib = library(request)
        cache = state.variant_cache = VariantCache(
            lib.data.root / "variants", lib.settings.library_transform_cache_bytes
        )
    return cache


def variant_key(file_id: str, blob: str, content_hash: str, spec: Spec) -> str:
    """The cache name of a variant: a new blob or content means a new name, so an old variant is never served."""
    material = "\0".join((RENDER_VERSION, file_id, blob, content_hash, spec.canonical()))
    return hashlib.sha256(material.encode()).hexdigest()


async def static_variant(request: Request) -> Response:
    """``GET /static/media/<id>/v1/<method>/<params>/<name>``: a transformed rendition of a public image."""
    lib = library(request)
    file_id = parse_file_id(request.path_params["file_id"])
    row = await in_thread(lib.catalog.get_file, file_id) if file_id else None
    if row is None or row.blob is None:
        raise ApiError(404, "NOT_FOUND", "no such file, or it is not ready yet")
    if row.private:
        raise ApiError(403, "FORBIDDEN", "this file is private: ask for a download link (generate-file-download-url)")
    params = request.path_params
    spec = parse_spec(params["method"], params["params"], params["name"])
    if row.media_type != MediaType.IMAGE:
        raise ApiError(400, "UNSUPPORTED_IMAGE", f"only images are transformed; this file is {row.media_type}")
    if row.width * row.height > MAX_SOURCE_PIXELS:
        raise _too_large(row.width, row.height)
    if row.status == OperationStatus.FAILED:  # processing could not decode it: not tried again in this process
        raise ApiError(400, "UNSUPPORTED_IMAGE", "the image failed processing, so it cannot be transformed")
    key = variant_key(row.id, row.blob, row.hash, spec)
    headers = {**_HEADERS, "Cache-Control": _CACHE_CONTROL, "ETag": f'"{key[:32]}"'}
    if headers["ETag"] in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    cache = _cache(request)
    path = cache.path_of(key, spec.fmt.ext)
    if not cache.max_bytes:
        data = await anyio.to_thread.run_sync(render, lib.blobs.path_of(row.blob), spec, limiter=_render_limiter())
        return Response(data, media_type=spec.fmt.media_type, headers={**headers, "X-Cache": "MISS"})
    while True:
        if (pending := cache.inflight.get(key)) is not None:
            await pending.wait()  # the same variant is being rendered here: wait for it, then read it
        elif (found := await anyio.to_thread.run_sync(cache.lookup, path)) is not None:
            return _cached(path, found, spec, headers)
        elif key not in cache.inflight:
            break
    cache.inflight[key] = done = anyio.Event()
    try:
        source = lib.blobs.path_of(row.blob)
        made = await anyio.to_thread.run_sync(_produce, cache, path, source, spec, limiter=_render_limiter())
    finally:
        del cache.inflight[key]
        done.set()
    if isinstance(made, os.stat_result):
        return _cached(path, made, spec, headers)
    return Response(made, media_type=spec.fmt.media_type, headers={**headers, "X-Cache": "MISS"})


def _cached(path: Path, found: os.stat_result, spec: Spec, headers: dict[str, str]) -> Response:
    media_type = spec.fmt.media_type
    return FileResponse(path, stat_result=found, media_type=media_type, headers={**headers, "X-Cache": "HIT"})
