"""What a stored file is: media type, MIME type and image size, read from its content."""

from __future__ import annotations

import io
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

import filetype
import imagesize

from media_mcp.wix.models import MediaType

_ARCHIVES = {
    "application/zip",
    "application/x-tar",
    "application/x-rar-compressed",
    "application/vnd.rar",
    "application/gzip",
    "application/x-bzip2",
    "application/x-7z-compressed",
    "application/x-xz",
    "application/zstd",
}
_DOCUMENT_PREFIXES = ("text/", "application/pdf", "application/msword", "application/vnd.", "application/rtf")
_MODELS = {"model/gltf-binary", "model/gltf+json", "model/obj", "model/stl"}
MEASURE_BYTES = 512 * 1024
"""How much of an image is read to find its width and height; past it they stay unknown (0 x 0).

A JPEG's size sits after its header segments, which a crafted file can make millions of: walking them costs
imagesize about 0.2 s per MiB in pure Python, holding the GIL, so an 8 MB file took 1.7 s and a 1 GiB one would
take minutes. Real headers (EXIF, ICC profiles, XMP) end well before this.
"""
_MIME_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}", re.IGNORECASE)


def valid_mime(mime: str) -> bool:
    """Is this a bare ``type/subtype`` (no parameters, spaces or line breaks)? Safe in a header."""
    return _MIME_RE.fullmatch(mime) is not None


@dataclass(frozen=True)
class Probe:
    media_type: MediaType
    mime_type: str
    width: int = 0
    height: int = 0


def media_type_of(mime: str) -> MediaType:
    """The Wix media type a MIME type belongs to."""
    mime = mime.lower()
    if mime == "image/svg+xml":
        return MediaType.VECTOR
    if mime.startswith("image/"):
        return MediaType.IMAGE
    if mime.startswith("video/"):
        return MediaType.VIDEO
    if mime.startswith("audio/"):
        return MediaType.AUDIO
    if mime in _ARCHIVES:
        return MediaType.ARCHIVE
    if mime in _MODELS or mime.startswith("model/"):
        return MediaType.MODEL3D
    if mime.startswith(_DOCUMENT_PREFIXES):
        return MediaType.DOCUMENT
    return MediaType.OTHER


def guess_mime(name: str) -> str | None:
    """The MIME type a file name's extension suggests."""
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed


def _looks_like_svg(head: bytes) -> bool:
    text = head[:4096].lstrip().lower()
    return text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text)


def probe(path: Path, head: bytes, declared_mime: str, name: str) -> Probe:
    """Decide a file's type from its bytes, falling back to the declared type and the extension."""
    kind = filetype.guess(head) if head else None
    if kind is not None:
        mime = str(kind.mime)
    elif _looks_like_svg(head):
        mime = "image/svg+xml"
    else:
        mime = declared_mime if declared_mime and declared_mime != "application/octet-stream" else ""
        mime = mime or guess_mime(name) or "application/octet-stream"
    media_type = media_type_of(mime)
    width = height = 0
    if media_type in (MediaType.IMAGE, MediaType.VECTOR):
        try:
            with open(path, "rb") as fh:
                start = fh.read(MEASURE_BYTES)
            w, h = imagesize.get(io.BytesIO(start))
        except (OSError, ValueError):
            w, h = -1, -1
        width, height = (int(w), int(h)) if w > 0 and h > 0 else (0, 0)
    return Probe(media_type=media_type, mime_type=mime, width=width, height=height)
