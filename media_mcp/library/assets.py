"""A file's assets: their keys, what processing records of them, and the ``media`` object a descriptor shows.

Asset keys, as Generate File Download URL takes them (``assetKeys``):

- ``src``: the file as uploaded; every file has it.
- ``preview``: a still, long side at most `PREVIEW_MAX` px (images, video poster frames, PDF first pages); an image's
  ``previewImage``, a video's ``posters``.
- ``thumbnail``: the same still, long side at most `THUMBNAIL_MAX` px; the descriptor's ``thumbnailUrl``, a PDF's
  ``thumbnail``.
- ``<N>p.mp4`` (``1080p.mp4``, ``720p.mp4``, ``480p.mp4``): a video re-encoded with its short side N px, made only
  below the source's own size; listed in ``resolutions``.
- ``128kbs.mp3``: a compressed rendition of audio whose own bitrate is higher; listed in the audio's ``assets``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from media_mcp.library.rows import FileRow
from media_mcp.wix import models as m

SOURCE = "src"
PREVIEW = "preview"
THUMBNAIL = "thumbnail"
AUDIO_RENDITION = "128kbs.mp3"
PREVIEW_MAX = 800
THUMBNAIL_MAX = 400
KEY_RE = re.compile(r"preview|thumbnail|[0-9]{2,4}p\.mp4|128kbs\.mp3")
"""The keys processing may make (a worker's answer naming any other is refused)."""
MIME_TYPES = {"image/jpeg", "image/png", "video/mp4", "audio/mpeg"}
"""The types of derived assets."""
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "video/mp4": "mp4", "audio/mpeg": "mp3"}
DECODED_IMAGES = frozenset({
    "image/jpeg", "image/pjpeg", "image/png", "image/apng", "image/gif", "image/webp", "image/bmp", "image/x-ms-bmp",
    "image/tiff", "image/x-icon", "image/vnd.microsoft.icon", "image/avif",
})  # fmt: skip
"""Image types processing decodes (Pillow's); others (HEIC, camera RAW, ...) are kept as they are, unprocessed."""
_UNDECODED_AUDIO = frozenset({"audio/midi", "audio/x-midi", "audio/sp-midi"})
_FORMATS = {
    "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/mp4": "m4a", "audio/x-m4a": "m4a", "audio/aac": "aac",
    "audio/x-aac": "aac", "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/vnd.wave": "wav",
    "audio/flac": "flac", "audio/x-flac": "flac", "audio/ogg": "ogg", "audio/opus": "opus", "audio/webm": "webm",
    "video/quicktime": "mov", "video/x-matroska": "mkv", "video/x-msvideo": "avi", "video/x-ms-wmv": "wmv",
}  # fmt: skip


def needs_processing(media_type: str, mime: str) -> bool:
    """Does a file of this type go through processing (PENDING until done), or is it ready as stored?"""
    if media_type == m.MediaType.IMAGE:
        return mime in DECODED_IMAGES
    if media_type == m.MediaType.AUDIO:
        return mime not in _UNDECODED_AUDIO
    return media_type == m.MediaType.VIDEO or mime == "application/pdf"


def format_of(mime: str) -> str:
    """A short format name for a MIME type: ``mp3``, ``m4a``, ``mp4``, ``webm``..."""
    return _FORMATS.get(mime) or mime.rsplit("/", 1)[-1].removeprefix("x-")


def download_name(display_name: str, key: str, mime: str) -> str:
    """The name a downloaded asset is saved under: ``clip-480p.mp4`` for the ``480p.mp4`` of ``clip.mov``."""
    stem = display_name.rsplit(".", 1)[0] if "." in display_name else display_name
    return f"{stem}-{key.split('.', 1)[0]}.{_EXTENSIONS.get(mime, 'bin')}"


@dataclass(frozen=True)
class Asset:
    key: str
    mime: str
    size: int
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class Processed:
    """What processing found in a file (stored as JSON in its row): metadata and the derived assets it made."""

    width: int = 0
    height: int = 0
    duration_ms: int | None = None
    bitrate: int | None = None
    colors: tuple[tuple[int, int, int], ...] = ()
    """Palette, most prominent first (images)."""
    assets: tuple[Asset, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @staticmethod
    def parse(text: str | None) -> Processed | None:
        """What a row's ``processed`` column says (the same text always gives the same, immutable, answer)."""
        return _parse(text) if text else None

    @classmethod
    def from_json(cls, text: str) -> Processed:
        data: dict[str, Any] = json.loads(text)
        return cls(
            width=data.get("width", 0),
            height=data.get("height", 0),
            duration_ms=data.get("duration_ms"),
            bitrate=data.get("bitrate"),
            colors=tuple((c[0], c[1], c[2]) for c in data.get("colors", ())),
            assets=tuple(Asset(**a) for a in data.get("assets", ())),
        )

    def asset(self, key: str) -> Asset | None:
        return next((a for a in self.assets if a.key == key), None)

    def keys(self) -> list[str]:
        """Every asset key the file has, ``src`` first."""
        return [SOURCE, *(a.key for a in self.assets)]


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> Processed:
    # a search renders the same rows again and again; reading their JSON was a fifth of rendering them
    return Processed.from_json(text)


Json = dict[str, Any]


def _color(rgb: tuple[int, int, int]) -> Json:
    r, g, b = rgb
    return {"hex": f"#{r:02x}{g:02x}{b:02x}", "rgb": {"r": r, "g": g, "b": b}}


def _still(found: Processed | None, key: str, url: Callable[[str], str]) -> Json | None:
    asset = found.asset(key) if found else None
    return {"id": "", "url": url(key), "width": asset.width, "height": asset.height} if asset else None


def media(row: FileRow, url: str, asset_url: Callable[[str], str], found: Processed | None) -> Json | None:
    """The ``media`` object of a ready file, as data for `m.FileMedia` (which validates it once, with the rest of the
    descriptor): one key, named for its media type, with the assets processing made.

    ``url``: the file's own URL and ``asset_url(key)`` an asset's (both empty for a private file).
    """
    name = row.display_name
    match row.media_type:
        case m.MediaType.IMAGE | m.MediaType.VECTOR:
            image: Json = {
                "image": {"id": row.id, "url": url, "height": row.height, "width": row.width, "filename": name},
                "previewImage": _still(found, PREVIEW, asset_url),
            }
            if found and found.colors:
                image["colors"] = {"prominent": _color(found.colors[0]), "palette": [_color(c) for c in found.colors]}
            return {"vector" if row.media_type == m.MediaType.VECTOR else "image": image}
        case m.MediaType.VIDEO:
            return {"video": _video(row, url, asset_url, found)}
        case m.MediaType.AUDIO:
            return {"audio": _audio(row, url, asset_url, found)}
        case m.MediaType.DOCUMENT:
            thumbnail = _still(found, THUMBNAIL, asset_url)
            return {"document": {"id": row.id, "url": url, "filename": name, "thumbnail": thumbnail}}
        case m.MediaType.ARCHIVE:
            return {"archive": {"id": row.id, "url": url, "sizeInBytes": row.size, "filename": name}}
        case m.MediaType.MODEL3D:
            return {"model3d": {"id": row.id, "url": url, "filename": name, "sizeInBytes": row.size}}
        case _:
            return None


def _video(row: FileRow, url: str, asset_url: Callable[[str], str], found: Processed | None) -> Json:
    duration = found.duration_ms if found else None
    resolutions = []
    if found and found.width and found.height:
        short = min(found.width, found.height)
        resolutions.append({
            "url": url, "width": found.width, "height": found.height, "format": format_of(row.mime_type),
            "quality": f"{short}p", "assetKey": SOURCE, "durationInMilliseconds": duration,
        })  # fmt: skip
    renditions = [a for a in found.assets if a.key.endswith("p.mp4")] if found else []
    for asset in sorted(renditions, key=lambda a: -min(a.width, a.height)):
        resolutions.append({
            "url": asset_url(asset.key), "width": asset.width, "height": asset.height, "format": asset.key,
            "quality": asset.key.split(".", 1)[0], "assetKey": asset.key, "durationInMilliseconds": duration,
        })  # fmt: skip
    poster = _still(found, PREVIEW, asset_url)
    return {
        "id": row.id, "resolutions": resolutions, "filename": row.display_name, "url": url,
        "posters": [poster] if poster else [], "sizeInBytes": row.size,
    }  # fmt: skip


def _audio(row: FileRow, url: str, asset_url: Callable[[str], str], found: Processed | None) -> Json:
    fmt = format_of(row.mime_type)
    sources: list[Json] = [{"id": row.id, "url": url, "filename": row.display_name, "assetKey": SOURCE, "format": fmt}]
    if found and found.asset(AUDIO_RENDITION):
        quality, ext = AUDIO_RENDITION.split(".", 1)
        rendition = {"id": "", "url": asset_url(AUDIO_RENDITION), "assetKey": AUDIO_RENDITION, "format": ext}
        sources.append(rendition | {"quality": quality})
    duration = found.duration_ms if found else None
    return {
        "id": row.id,
        "assets": sources,
        "bitrate": found.bitrate if found else None,
        "format": fmt,
        "duration": round(duration / 1000) if duration is not None else None,
        "sizeInBytes": row.size,
    }
