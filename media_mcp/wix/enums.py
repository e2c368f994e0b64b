"""The Wix Media v2 enums and fixed ids: what the guard needs of the REST shapes before any call.

`media_mcp.wix.models` builds the shapes on these; a server imports this module alone at start-up, and the sixty
models on its first call.
"""

from __future__ import annotations

from enum import StrEnum


class MediaType(StrEnum):
    UNKNOWN = "UNKNOWN"
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"
    AUDIO = "AUDIO"
    DOCUMENT = "DOCUMENT"
    VECTOR = "VECTOR"
    ARCHIVE = "ARCHIVE"
    MODEL3D = "MODEL3D"
    OTHER = "OTHER"


FILTERABLE_MEDIA_TYPES: tuple[MediaType, ...] = (
    MediaType.IMAGE,
    MediaType.VIDEO,
    MediaType.AUDIO,
    MediaType.DOCUMENT,
    MediaType.VECTOR,
    MediaType.ARCHIVE,
    MediaType.MODEL3D,
)


class OperationStatus(StrEnum):
    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"


class State(StrEnum):
    OK = "OK"
    DELETED = "DELETED"


class RootFolder(StrEnum):
    MEDIA_ROOT = "MEDIA_ROOT"
    TRASH_ROOT = "TRASH_ROOT"
    VISITOR_UPLOADS_ROOT = "VISITOR_UPLOADS_ROOT"


class SortOrder(StrEnum):
    ASC = "ASC"
    DESC = "DESC"


class UploadProtocol(StrEnum):
    TUS = "TUS"


class ContentDisposition(StrEnum):
    ATTACHMENT = "ATTACHMENT"
    INLINE = "INLINE"


MEDIA_ROOT_ID = "media-root"
TRASH_ROOT_ID = "trash-root"
VISITOR_UPLOADS_ID = "visitor-uploads"
SYSTEM_FOLDER_IDS = frozenset({MEDIA_ROOT_ID, TRASH_ROOT_ID, VISITOR_UPLOADS_ID})

FILE_SORT_FIELDS = ("displayName", "updatedDate", "sizeInBytes")
FOLDER_SORT_FIELDS = ("displayName", "updatedDate")
