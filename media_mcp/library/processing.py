"""What processing makes of one stored file: its metadata and derived assets, decoded by Pillow, PyAV and pdfium.

`process` is the one entry point: a file, its media type and a directory to write into, in; a `Result` out (or
`Unprocessable`, saying why). It trusts nothing in the file and keeps no state, so it is run in a worker process with
resource limits (see `processor`), and running it twice on a file gives the same result.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pypdfium2 as pdfium  # type: ignore[import-untyped]  # no type information shipped
from av.audio.stream import AudioStream
from av.video.stream import VideoStream
from PIL import Image, ImageOps

from media_mcp.library import assets

MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
"""Largest image (or video frame) decoded, in pixels: Pillow's own bound against decompression bombs (~89.5 MP)."""
POSTER_AT = 1.0
"""Seconds into a video its poster frame is taken from (or a tenth of a shorter video): past fades from black."""
POSTER_FRAMES = 120
"""Most frames decoded to reach the poster frame."""
AUDIO_RENDITION_BITRATE = 128_000
AUDIO_RENDITION_ABOVE = 160_000
"""Audio is given a 128 kb/s rendition when its own bitrate is above this (a larger file than the rendition)."""
_NEAR = 32
"""Palette colours closer than this (RGB distance) count as one: JPEG's ringing makes many shades of each."""
_JPEG_QUALITY = 85
_PRIVATE = 0o600


class Unprocessable(Exception):
    """The file is not what its type says, or is damaged: why, in words for whoever uploaded it."""


@dataclass(frozen=True)
class Limits:
    """What processing may do with one file."""

    max_pixels: int = MAX_PIXELS
    rendition_heights: tuple[int, ...] = (1080, 720, 480)
    """Video renditions made, by the short side of the picture; only those smaller than the source."""
    rendition_max_seconds: float = 120.0
    """Videos longer than this get no renditions (encoding time grows with length, and one file's processing has a
    time limit): only the source is listed."""


@dataclass(frozen=True)
class Derived:
    """A derived file written to the output directory, under ``name``, served as asset ``key``."""

    key: str
    name: str
    mime: str
    width: int = 0
    height: int = 0


@dataclass
class Result:
    width: int = 0
    height: int = 0
    duration_ms: int | None = None
    bitrate: int | None = None
    colors: list[tuple[int, int, int]] = field(default_factory=list)
    """Palette, most prominent first (images only)."""
    derived: list[Derived] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The result as plain JSON values (what a worker sends back; `processor` reads it)."""
        return asdict(self)


def process(source: Path, media_type: str, mime: str, out: Path, limits: Limits = Limits()) -> Result:
    """Read ``source`` as the given type, write its derived files into ``out``; raises `Unprocessable`."""
    if media_type == "IMAGE":
        return _image(source, out, limits)
    if media_type == "VIDEO":
        return _video(source, out, limits)
    if media_type == "AUDIO":
        return _audio(source, out)
    if mime == "application/pdf":
        return _pdf(source, out)
    return Result()


def _brief(exc: BaseException, source: Path) -> str:
    """An exception in a few words, without the file's path (it is the library's, not the user's)."""
    text = getattr(exc, "strerror", None) or str(exc)  # FFmpeg's errors: their words, without errno and path
    return str(text).replace(str(source), "the file").strip()[:200] or type(exc).__name__


# --- stills: previews, thumbnails, colours -----------------------------------------------------


def _flat(image: Image.Image) -> Image.Image:
    """RGB, or RGBA where some pixel is see-through; deep greys are brought to 8 bits first."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        image = image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if not image.has_transparency_data:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    return rgba.convert("RGB") if rgba.getchannel("A").getextrema() == (255, 255) else rgba


def _save(image: Image.Image, out: Path, key: str, longest: int) -> Derived:
    """A copy of ``image`` scaled to fit ``longest`` pixels (never enlarged), as JPEG, or PNG where transparent."""
    still = image.copy()
    still.thumbnail((longest, longest), Image.Resampling.LANCZOS, reducing_gap=3.0)
    alpha = still.mode == "RGBA"
    name = f"{key}.{'png' if alpha else 'jpg'}"
    fd = os.open(out / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE)
    with os.fdopen(fd, "wb") as fh:
        if alpha:
            still.save(fh, "PNG")
        else:
            still.save(fh, "JPEG", quality=_JPEG_QUALITY)
    return Derived(key, name, "image/png" if alpha else "image/jpeg", still.width, still.height)


def _stills(image: Image.Image, out: Path) -> list[Derived]:
    """The preview and the thumbnail of a picture (an image, a video's poster frame, a PDF's first page)."""
    image = _flat(image)
    return [
        _save(image, out, assets.PREVIEW, assets.PREVIEW_MAX),
        _save(image, out, assets.THUMBNAIL, assets.THUMBNAIL_MAX),
    ]


def _palette(image: Image.Image, count: int = 8) -> list[tuple[int, int, int]]:
    """The main colours of the visible pixels, most frequent first; shades close to one already listed are not."""
    small = image.copy()
    small.thumbnail((64, 64))
    if small.mode == "RGBA":  # only the pixels one sees
        data = small.tobytes()
        pixels = b"".join(data[i : i + 3] for i in range(0, len(data), 4) if data[i + 3] >= 128)
        if not pixels:
            return []
        small = Image.frombytes("RGB", (len(pixels) // 3, 1), pixels)
    quantized = small.convert("RGB").quantize(colors=count, method=Image.Quantize.MEDIANCUT)
    palette = quantized.getpalette() or []
    counts = [(n, i) for n, i in quantized.getcolors() or [] if isinstance(i, int)]
    kept: list[tuple[int, int, int]] = []
    for _, i in sorted(counts, key=lambda c: (-c[0], c[1])):
        rgb = (palette[3 * i], palette[3 * i + 1], palette[3 * i + 2])
        if all(sum((a - b) ** 2 for a, b in zip(rgb, other, strict=True)) > _NEAR**2 for other in kept):
            kept.append(rgb)
    return kept


# --- images --------------------------------------------------------------------------------------


def _image(source: Path, out: Path, limits: Limits) -> Result:
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    try:
        with warnings.catch_warnings():
            # past the bound Pillow only warns (up to twice it): any image past it is refused here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as opened:
                width, height = opened.size
                # JPEG decodes straight at 1/2, 1/4 or 1/8 scale: enough for the preview, a fraction of the work
                opened.draft("RGB", (assets.PREVIEW_MAX, assets.PREVIEW_MAX))
                opened.load()
                if opened.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientation: turned a quarter
                    width, height = height, width
                image = ImageOps.exif_transpose(opened)
                flat = _flat(image)
    except Image.DecompressionBombError as exc:
        raise Unprocessable(f"the image is too large to process: {_brief(exc, source)}") from exc
    except Image.DecompressionBombWarning as exc:
        raise Unprocessable(f"the image is too large to process: {_brief(exc, source)}") from exc
    except MemoryError:
        raise
    except Exception as exc:  # a damaged file can raise almost anything from a decoder
        raise Unprocessable(f"the image could not be decoded: {_brief(exc, source)}") from exc
    return Result(width=width, height=height, colors=_palette(flat), derived=_stills(flat, out))


# --- video ---------------------------------------------------------------------------------------


@contextmanager
def _opened(source: Path, what: str) -> Iterator[av.container.InputContainer]:
    try:
        with av.open(str(source), metadata_errors="ignore") as container:
            yield container
    except Unprocessable:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # FFmpeg errors, and PyAV's own on odd streams
        raise Unprocessable(f"the {what} could not be decoded: {_brief(exc, source)}") from exc


def _duration(container: av.container.InputContainer, stream: VideoStream | AudioStream) -> float | None:
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _video(source: Path, out: Path, limits: Limits) -> Result:
    with _opened(source, "video") as container:
        if not container.streams.video:
            raise Unprocessable("the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > limits.max_pixels:
            raise Unprocessable(f"the video's frames are too large to process: {width}x{height} pixels")
        duration = _duration(container, stream)
        target = min(POSTER_AT, duration / 10) if duration else 0.0
        poster = None
        for count, frame in enumerate(container.decode(stream), 1):
            poster = frame
            if frame.time is None or frame.time >= target or count >= POSTER_FRAMES:
                break
        if poster is None:
            raise Unprocessable("no frame of the video could be decoded")
        width, height = width or poster.width, height or poster.height
        # a phone films sideways and says how to turn the picture (counter-clockwise): shown as it is meant to be
        turn = round((poster.rotation or 0) / 90) % 4 * 90
        picture = poster.to_image().rotate(turn, expand=True)  # type: ignore[no-untyped-call]  # PyAV: untyped
        bitrate = container.bit_rate or None
    derived = _stills(picture, out)
    if duration is not None and duration <= limits.rendition_max_seconds:
        for short in limits.rendition_heights:
            if short < min(width, height):
                with suppress(Unprocessable):  # a rendition the source does not allow is left out, not the file
                    derived.append(_rendition(source, out, short, (width, height), turn))
    ms = round(duration * 1000) if duration else None
    shown = (height, width) if turn in (90, 270) else (width, height)
    return Result(width=shown[0], height=shown[1], duration_ms=ms, bitrate=bitrate, derived=derived)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _rendition(source: Path, out: Path, short: int, coded: tuple[int, int], turn: int) -> Derived:
    """The video re-encoded (H.264 and AAC in MP4) with its short side ``short`` pixels, turned as the source is."""
    scale = short / min(coded)
    size = (_even(coded[0] * scale), _even(coded[1] * scale))
    key = f"{short}p.mp4"
    target = out / key
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE))
    try:
        _encode(source, target, size, turn)
    except Unprocessable:
        target.unlink(missing_ok=True)
        raise
    shown = (size[1], size[0]) if turn in (90, 270) else size
    return Derived(key, key, "video/mp4", *shown)


def _encode(source: Path, target: Path, size: tuple[int, int], turn: int) -> None:
    with _opened(source, "video") as container, av.open(str(target), "w", format="mp4") as output:
        vin = container.streams.video[0]
        vin.thread_type = "AUTO"
        ain = container.streams.audio[0] if container.streams.audio else None
        rate = vin.average_rate if vin.average_rate and 0 < vin.average_rate <= 120 else Fraction(25)
        vout = output.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = size[0], size[1], "yuv420p"
        vout.options = {"preset": "veryfast", "crf": "23", "movflags": "+faststart"}
        if turn:
            vout.set_display_rotation(turn)
        aout, resampler = None, None
        if ain is not None:
            aout = output.add_stream("aac", rate=48000)
            aout.layout, aout.bit_rate = "stereo", 128_000
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
        for packet in container.demux(*([vin] + ([ain] if ain is not None else []))):
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    scaled = frame.reformat(width=size[0], height=size[1], format="yuv420p")
                    output.mux(vout.encode(scaled))
                elif aout is not None and resampler is not None and isinstance(frame, av.AudioFrame):
                    for chunk in resampler.resample(frame):
                        output.mux(aout.encode(chunk))
        output.mux(vout.encode(None))
        if aout is not None:
            output.mux(aout.encode(None))


# --- audio ---------------------------------------------------------------------------------------


def _audio(source: Path, out: Path) -> Result:
    with _opened(source, "audio") as container:
        if not container.streams.audio:
            raise Unprocessable("the file has no audio stream")
        stream = container.streams.audio[0]
        decoded = next(iter(container.decode(stream)), None)
        if decoded is None:
            raise Unprocessable("no sound of the audio could be decoded")
        duration = _duration(container, stream)
        bitrate = container.bit_rate or stream.bit_rate or None
    result = Result(duration_ms=round(duration * 1000) if duration else None, bitrate=bitrate)
    if bitrate is None or bitrate > AUDIO_RENDITION_ABOVE:
        with suppress(Unprocessable):  # left out if the sound cannot be re-encoded; the file stays playable
            result.derived.append(_audio_rendition(source, out))
    return result


def _audio_rendition(source: Path, out: Path) -> Derived:
    """The sound as a 128 kb/s stereo MP3."""
    key = assets.AUDIO_RENDITION
    target = out / key
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE))
    try:
        with _opened(source, "audio") as container, av.open(str(target), "w", format="mp3") as output:
            stream = output.add_stream("libmp3lame", rate=44100)
            stream.layout, stream.bit_rate = "stereo", AUDIO_RENDITION_BITRATE
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=44100)
            for frame in container.decode(container.streams.audio[0]):
                for chunk in resampler.resample(frame):
                    output.mux(stream.encode(chunk))
            for chunk in resampler.resample(None):
                output.mux(stream.encode(chunk))
            output.mux(stream.encode(None))
    except Unprocessable:
        target.unlink(missing_ok=True)
        raise
    return Derived(key, key, "audio/mpeg")


# --- documents -----------------------------------------------------------------------------------


def _pdf(source: Path, out: Path) -> Result:
    try:
        document = pdfium.PdfDocument(str(source))
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():  # a sound document, only locked: ready, without a thumbnail
            return Result()
        raise Unprocessable(f"the PDF could not be read: {_brief(exc, source)}") from exc
    try:
        if len(document) < 1:
            raise Unprocessable("the PDF has no pages")
        page = document[0]
        width, height = page.get_size()
        if not (width > 0 and height > 0):
            raise Unprocessable("the PDF's first page has no size")
        # rendered straight at the preview's size, however large the page claims to be
        picture = page.render(scale=assets.PREVIEW_MAX / max(width, height)).to_pil()
    except Unprocessable:
        raise
    except Exception as exc:
        raise Unprocessable(f"the PDF's first page could not be rendered: {_brief(exc, source)}") from exc
    finally:
        document.close()
    return Result(derived=_stills(picture, out))
