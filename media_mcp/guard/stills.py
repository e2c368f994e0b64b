"""Small stills of media files for a model to look at: where a file's still comes from, and the image it becomes.

The backend makes the stills (Wix, and the embedded library, as Wix does): an image's rendition through the image
URL syntax, a video's poster, a document's first page. A public file's still is fetched from its public URL; a
private file has none, so the guard mints a one-minute link to its preview asset (never shown to the model). Here
the fetched bytes become one small JPEG within a byte budget, decoded with Pillow under a pixel cap.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from media_mcp.guard.text import quoted
from media_mcp.wix import enums

if TYPE_CHECKING:
    from PIL import Image

    from media_mcp.wix import models as m

MIN_PX = 32
MAX_PX = 512
"""Bounds of a still's long side: small enough that a dozen stay a small part of a model's context."""
DEFAULT_PX = 256
MAX_FILES = 12
"""Most files one call previews."""
FETCH_LIMIT = 32 * 1024 * 1024
"""Most bytes fetched for one still (a private image on Wix comes as its original)."""
PIXEL_LIMIT = 64_000_000
"""Largest image decoded for a still; a bigger one (or a decompression bomb) gets no still."""
PREVIEW_ASSET = "preview"
"""The asset key of a file's still, where the backend makes one (the embedded library does)."""
SOURCE_ASSET = "src"
"""The asset key of a file's original."""
QUALITIES = (80, 65, 50, 35)


class NoStill(Exception):
    """The fetched bytes give no still: not an image, too large, or over the budget however small."""


@dataclass(frozen=True)
class Source:
    """Where a file's still comes from: a URL anyone may fetch, or an asset to mint a short link to."""

    url: str | None = None
    asset_key: str | None = None


def source_of(file: m.FileDescriptor, px: int) -> Source | None:
    """The still of ``file`` at about ``px`` on the long side, or None when its type has none."""
    media = file.media
    if media is None:
        return None
    image = media.image or media.vector
    if image is not None:
        if not file.private and file.url and file.media_type == enums.MediaType.IMAGE:
            return Source(url=f"{file.url}/v1/fit/w_{px},h_{px}/preview.jpg")
        still = image.preview_image
        if still is not None and still.url:
            return Source(url=still.url)
        if file.private:
            return Source(asset_key=PREVIEW_ASSET if still is not None else SOURCE_ASSET)
        return None
    if media.video is not None:
        posters = media.video.posters
        if not posters:
            return None
        return Source(url=posters[0].url) if posters[0].url else Source(asset_key=PREVIEW_ASSET)
    if media.document is not None and media.document.thumbnail is not None:
        thumbnail = media.document.thumbnail
        return Source(url=thumbnail.url) if thumbnail.url else Source(asset_key=PREVIEW_ASSET)
    return None


def line(name: str, kind: str, width: int | None, height: int | None, seconds: float | None) -> str:
    """The text line before a still, naming the file it shows."""
    parts = [kind.lower()]
    if width and height:
        parts.append(f"{width}x{height}")
    if seconds is not None:
        parts.append(f"{seconds:g} s")
    return f"{quoted(name)} ({', '.join(parts)}):"


@dataclass(frozen=True)
class Still:
    data: bytes
    mime: str
    width: int
    height: int

    def data_url(self) -> str:
        """The still inline, as a ``data:`` URL (an image tag shows it without fetching anything)."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode()}"


def render(data: bytes, px: int, budget: int) -> Still:
    """``data`` (an image) as a JPEG whose long side is at most ``px`` and whose size is at most ``budget`` bytes.

    Pillow is imported here, on the first preview, not when the server starts."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > PIXEL_LIMIT:
                raise NoStill(f"too large to preview ({opened.width}x{opened.height} px)")
            opened.draft("RGB", (px, px))  # JPEG: decode at a fraction of the size (no-op for other formats)
            image = ImageOps.exif_transpose(opened.convert("RGBA") if opened.mode in ("P", "LA") else opened)
            image.thumbnail((px, px))
            if image.mode in ("RGBA", "LA"):
                flat = Image.new("RGB", image.size, "white")
                flat.paste(image, mask=image.getchannel("A"))
                image = flat
            elif image.mode != "RGB":
                image = image.convert("RGB")
            return _within(image, budget)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise NoStill("not an image that can be previewed") from exc


def _within(image: Image.Image, budget: int) -> Still:
    """The JPEG of ``image`` at the best quality that fits ``budget``, shrinking it if even the lowest does not."""
    while True:
        for quality in QUALITIES:
            out = io.BytesIO()
            image.save(out, "JPEG", quality=quality, optimize=True)
            if out.tell() <= budget:
                return Still(out.getvalue(), "image/jpeg", image.width, image.height)
        if max(image.size) <= MIN_PX:
            raise NoStill("no still fits what is left of the answer's byte budget")
        image = image.resize((max(1, image.width * 3 // 4), max(1, image.height * 3 // 4)))
