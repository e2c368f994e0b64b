"""What a stored file is: media type, MIME type and image size, read from its content."""

from __future__ import annotations

import codecs
import io
import mimetypes
import os
import re
import unicodedata
from collections.abc import Generator, Iterable
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


_MARKUP_SUBTYPE = re.compile(
    r"(?:^|[.+-])(?:x?html?|xml|xslt?|svg)(?:$|[.+-])"  # HTML, XHTML, SVG, XSLT and every XML-based type
    r"|(?:java|ecma|j|live|vb)script"  # scripts
    r"|shockwave-flash|futuresplash|^x-component$|^hta$"  # plug-in and legacy active content
)
_MARKUP_TYPES = {"multipart/x-mixed-replace"}


def is_markup(mime: str) -> bool:
    """Is this a type a browser may run: HTML, SVG, any XML-based type (``*/xml``, ``*/*+xml``), a script?

    Such a type is stored only for a link minted for a type of the kind, never because of what the bytes or a
    name look like.
    """
    base = mime.split(";", 1)[0].strip().lower()
    _, slash, subtype = base.partition("/")
    return bool(slash) and (base in _MARKUP_TYPES or _MARKUP_SUBTYPE.search(subtype) is not None)


SNIFF_CHARS = 8192
"""Characters of a file's text, after what is skipped before it, that the markup sniff looks at."""
SNIFF_MIN_CHARS = 512
"""Characters read at least (past the skipped start), where the file has them, before the sniff decides."""
SNIFF_BLOCK = 64 * 1024
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe", "utf-16-le"))
_TAG_RE = re.compile(r"<((?:[:_]|[^\W\d])[^\s/>]*)")
_HTML_TAGS = frozenset({
    "html", "head", "body", "script", "iframe", "frameset", "frame", "object", "embed", "h1", "div", "font", "table",
    "a", "style", "title", "b", "br", "p", "img", "form", "input", "button", "meta", "link", "base", "template",
    "noscript", "xmp", "plaintext", "textarea", "math", "video", "audio", "marquee", "details",
})  # fmt: skip
_BLANK_RE = re.compile(r"[\s\x00]*")


def _skip(text: str) -> str:
    """``text`` from its first character that is not whitespace of any kind, NUL, or a format character (BOM)."""
    start = 0
    while True:
        found = _BLANK_RE.match(text, start)
        start = found.end() if found else start
        if start < len(text) and unicodedata.category(text[start]) == "Cf":
            start += 1
            continue
        return text[start:]


def _leading_text(blocks: Iterable[bytes]) -> str:
    """Up to `SNIFF_CHARS` characters of the text, from its first one that is not skipped, however far in."""
    decoder: codecs.IncrementalDecoder | None = None
    text = ""
    for block in blocks:
        if decoder is None:
            codec = "utf-8"
            for bom, name in _BOMS:
                if block.startswith(bom):
                    codec, block = name, block[len(bom) :]
                    break
            decoder = codecs.getincrementaldecoder(codec)(errors="replace")
        text = text + decoder.decode(block) if text else _skip(decoder.decode(block))
        if len(text) >= SNIFF_MIN_CHARS:  # enough to tell a tag from a "<" that ends a block
            break
    return text[:SNIFF_CHARS]


def markup_of(blocks: Iterable[bytes]) -> str | None:
    """The markup type of a text (SVG, HTML, other XML) by its content, or None if it does not start with markup.

    Leading whitespace of any kind, NULs, byte-order marks and format characters are skipped, however many, and
    UTF-16 text (with a BOM, or ASCII with NULs between) is read as text: a browser or an XML parser would.
    """
    text = _leading_text(blocks).replace("\x00", "").lower()
    if not text.startswith("<"):
        return None
    if text.startswith(("<?", "<!")):  # a prolog (XML declaration, doctype, comment): the root element decides
        if "<svg" in text or ":svg" in text:
            return "image/svg+xml"
        if text.startswith("<!--") or "<!doctype html" in text or "<html" in text or "xhtml" in text:
            return "text/html"
        return "application/xml"
    tag = _TAG_RE.match(text)
    if tag is None:  # "<3", "< 5": not a tag
        return None
    local = tag.group(1).rsplit(":", 1)[-1]
    if local == "svg":
        return "image/svg+xml"
    if local in _HTML_TAGS or "xhtml" in text:
        return "text/html"
    return "application/xml"  # any other element: an XML document, which may hold XHTML or SVG by namespace


def _file_blocks(path: Path, head: bytes) -> Generator[bytes, None, None]:
    """``head``, then the rest of the file (read only if the sniff needs it)."""
    yield head
    with open(path, "rb") as fh:
        fh.seek(len(head))
        while block := fh.read(SNIFF_BLOCK):
            yield block


def content_type(path: Path, head: bytes) -> str | None:
    """The type a file's bytes show, whatever it was declared or named: markup first, then binary signatures."""
    if not head:
        return None
    blocks = _file_blocks(path, head)
    try:
        markup = markup_of(blocks)
    finally:
        blocks.close()  # the file, if the sniff had to open it
    if markup is not None:
        return markup
    kind = filetype.guess(head)
    return str(kind.mime) if kind is not None else None


def probe(path: Path, head: bytes, declared_mime: str, name: str) -> Probe:
    """Decide a file's type from its bytes, falling back to the declared type, then (given a name) its extension."""
    mime = content_type(path, head) or ""
    if not mime:
        mime = declared_mime if declared_mime and declared_mime != "application/octet-stream" else ""
        mime = mime or (guess_mime(name) if name else None) or "application/octet-stream"
    media_type = media_type_of(mime)
    width = height = 0
    if media_type in (MediaType.IMAGE, MediaType.VECTOR):
        try:
            with open(path, "rb") as fh:
                # no more than the file holds: a read of n bytes allocates n first, and half a MiB taken and given
                # back for a small image raises glibc's threshold for serving large blocks from the heap
                start = fh.read(min(MEASURE_BYTES, os.fstat(fh.fileno()).st_size))
            w, h = imagesize.get(io.BytesIO(start))
        except (OSError, ValueError):
            w, h = -1, -1
        width, height = (int(w), int(h)) if w > 0 and h > 0 else (0, 0)
    return Probe(media_type=media_type, mime_type=mime, width=width, height=height)
