"""The Wix Media v2 REST shapes, written once for the library and the adapter.

Field names are snake_case in Python and camelCase on the wire; ``sizeInBytes`` travels as a
string of digits; unknown fields are ignored when parsing, because Wix adds fields freely.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from media_mcp.wix import enums

# the enums and fixed ids, read as part of the shapes (a module of their own so the guard starts without the shapes)
FILE_SORT_FIELDS = enums.FILE_SORT_FIELDS
FILTERABLE_MEDIA_TYPES = enums.FILTERABLE_MEDIA_TYPES
FOLDER_SORT_FIELDS = enums.FOLDER_SORT_FIELDS
MEDIA_ROOT_ID = enums.MEDIA_ROOT_ID
SYSTEM_FOLDER_IDS = enums.SYSTEM_FOLDER_IDS
TRASH_ROOT_ID = enums.TRASH_ROOT_ID
VISITOR_UPLOADS_ID = enums.VISITOR_UPLOADS_ID
ContentDisposition = enums.ContentDisposition
MediaType = enums.MediaType
OperationStatus = enums.OperationStatus
RootFolder = enums.RootFolder
SortOrder = enums.SortOrder
State = enums.State
UploadProtocol = enums.UploadProtocol

# --- scalar conventions -------------------------------------------------------------------


def _format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[:23] + "Z"


Int64 = Annotated[int, PlainSerializer(str, return_type=str)]
"""An int64, sent as a JSON string of digits like Wix does (pydantic reads such strings as ints by itself)."""

Timestamp = Annotated[datetime, PlainSerializer(_format_timestamp, return_type=str)]
"""An RFC 3339 UTC timestamp with milliseconds, e.g. ``2022-09-11T15:13:24.000Z``."""


class WixModel(BaseModel):
    """Base for every REST shape: camelCase aliases, unknown fields ignored."""

    # JSON keys repeat and are worth pydantic-core's string cache; values (ids, names, dates) mostly do not,
    # and caching them only fills memory. Each shape builds its validator on first use (defer_build): a process uses a
    # few of the sixty, and building all of them at import cost a start-up about 20 ms.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", cache_strings="keys", defer_build=True
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON object as Wix sends it (aliases, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- entities -------------------------------------------------------------------------------


class Image(WixModel):
    id: str
    url: str
    height: int
    width: int
    alt_text: str | None = None
    filename: str | None = None


class ColorRGB(WixModel):
    r: int = Field(ge=0, le=255)
    g: int = Field(ge=0, le=255)
    b: int = Field(ge=0, le=255)


class Color(WixModel):
    hex: str | None = None
    rgb: ColorRGB | None = None


class Colors(WixModel):
    prominent: Color | None = None
    palette: list[Color] = Field(default_factory=list)


class ImageMedia(WixModel):
    image: Image
    colors: Colors | None = None
    preview_image: Image | None = None
    caption: str | None = None


class VideoResolution(WixModel):
    url: str
    height: int
    width: int
    format: str | None = None
    quality: str | None = None
    """Internal in Wix's SDK, e.g. ``480p``; as are the two below."""
    asset_key: str | None = None
    """The key that downloads this resolution (Generate File Download URL), e.g. ``480p.mp4``."""
    duration_in_milliseconds: int | None = None


class VideoV2(WixModel):
    id: str
    resolutions: list[VideoResolution] = Field(default_factory=list)
    """Best first."""
    filename: str | None = None
    url: str | None = None
    posters: list[Image] = Field(default_factory=list)
    size_in_bytes: Int64 | None = None


class Audio(WixModel):
    id: str
    url: str
    filename: str | None = None
    asset_key: str | None = None
    """Internal in Wix's SDK, e.g. ``128kbs.mp3``; as are the two below."""
    format: str | None = None
    quality: str | None = None


class AudioV2(WixModel):
    id: str
    assets: list[Audio] = Field(default_factory=list)
    bitrate: int | None = None
    format: str | None = None
    duration: int | None = None
    size_in_bytes: Int64 | None = None


class Document(WixModel):
    id: str
    url: str
    filename: str | None = None
    thumbnail: Image | None = None
    size_in_bytes: Int64 | None = None


class Archive(WixModel):
    id: str
    url: str
    size_in_bytes: Int64 | None = None
    filename: str | None = None


class Model3D(WixModel):
    id: str
    url: str
    alt_text: str | None = None
    filename: str | None = None
    size_in_bytes: Int64 | None = None


class FileMedia(WixModel):
    """Exactly one key is set, matching the descriptor's ``mediaType``."""

    image: ImageMedia | None = None
    video: VideoV2 | None = None
    audio: AudioV2 | None = None
    document: Document | None = None
    vector: ImageMedia | None = None
    archive: Archive | None = None
    model3d: Model3D | None = Field(default=None, alias="model3d")  # Wix's spelling, not to_camel's "model3D"


class FileDescriptor(WixModel):
    id: str
    display_name: str
    url: str | None = None
    parent_folder_id: str | None = None
    hash: str = ""
    size_in_bytes: Int64 | None = None
    private: bool = False
    media_type: MediaType = MediaType.UNKNOWN
    media: FileMedia | None = None
    operation_status: OperationStatus = OperationStatus.READY
    source_url: str | None = None
    thumbnail_url: str | None = None
    labels: list[str] = Field(default_factory=list)
    created_date: Timestamp | None = None
    updated_date: Timestamp | None = None
    site_id: str | None = None
    state: State = State.OK
    failure_reason: str | None = None
    """Not in Wix's descriptor: the embedded library says here why a FAILED file failed (Wix gives no reason)."""


class Folder(WixModel):
    id: str
    display_name: str
    parent_folder_id: str | None = None
    created_date: Timestamp | None = None
    updated_date: Timestamp | None = None
    state: State = State.OK
    site_id: str | None = None


# --- paging ---------------------------------------------------------------------------------


class Cursors(WixModel):
    next: str | None = None


class PagingMetadataV2(WixModel):
    """Paging info; list and search responses carry it under ``nextCursor``."""

    total: int | None = None
    cursors: Cursors = Field(default_factory=Cursors)
    has_next: bool = False


class CursorPaging(WixModel):
    limit: int | None = Field(default=None, ge=0, le=100)
    cursor: str | None = Field(default=None, max_length=16000)


class Sorting(WixModel):
    field_name: str = Field(max_length=512)
    order: SortOrder = SortOrder.ASC


# --- errors ---------------------------------------------------------------------------------


class ApplicationError(WixModel):
    code: str
    description: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class FieldViolation(WixModel):
    field: str
    description: str = ""
    violated_rule: str = "OTHER"
    rule_name: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class ValidationError(WixModel):
    field_violations: list[FieldViolation] = Field(default_factory=list)


class ErrorDetails(WixModel):
    application_error: ApplicationError | None = None
    validation_error: ValidationError | None = None


class ErrorBody(WixModel):
    """The body of every non-2xx Wix answer."""

    message: str = ""
    details: ErrorDetails = Field(default_factory=ErrorDetails)
    request_id: str | None = None
