"""Request and response messages of the Wix Media v2 Files and Folders services.

Limits are the documented ones; the library enforces them by validating with these models and
the adapter builds its calls from them, so both ends agree on every shape.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from media_mcp.wix.models import (
    ContentDisposition,
    CursorPaging,
    FileDescriptor,
    Folder,
    Int64,
    MediaType,
    PagingMetadataV2,
    RootFolder,
    Sorting,
    UploadProtocol,
    WixModel,
)

FileId = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
FolderId = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Label = Annotated[str, StringConstraints(max_length=200)]
AssetKey = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class FieldMask(WixModel):
    paths: list[str] = Field(default_factory=list)


class ExternalInfo(WixModel):
    origin: str | None = Field(default=None, max_length=1000)
    external_ids: list[Annotated[str, StringConstraints(max_length=4000)]] = Field(default_factory=list, max_length=30)


# --- files ----------------------------------------------------------------------------------


class GenerateFilesDownloadUrlRequest(WixModel):
    file_ids: list[FileId] = Field(min_length=1, max_length=1000)


class GenerateFilesDownloadUrlResponse(WixModel):
    download_url: str


class GenerateFileDownloadUrlRequest(WixModel):
    file_id: FileId
    download_file_name: str | None = Field(default=None, max_length=100)
    expiration_in_minutes: int | None = Field(default=None, ge=1, le=525600)
    expiration_redirect_url: str | None = Field(default=None, max_length=2000)
    asset_keys: list[AssetKey] | None = Field(default=None, max_length=100)
    content_disposition: ContentDisposition | None = None


class DownloadUrl(WixModel):
    url: str
    asset_key: str


class GenerateFileDownloadUrlResponse(WixModel):
    download_urls: list[DownloadUrl]


class GetFileDescriptorResponse(WixModel):
    file: FileDescriptor


class GetFileDescriptorsRequest(WixModel):
    file_ids: list[FileId] = Field(min_length=1, max_length=100)


class GetFileDescriptorsResponse(WixModel):
    files: list[FileDescriptor]


class FileUpdate(WixModel):
    id: FileId
    display_name: str | None = Field(default=None, min_length=1, max_length=255)
    parent_folder_id: FolderId | None = None
    labels: list[Label] | None = Field(default=None, max_length=500)


class UpdateFileDescriptorRequest(WixModel):
    file: FileUpdate
    field_mask: str | FieldMask | None = None


class UpdateFileDescriptorResponse(WixModel):
    file: FileDescriptor


class GenerateFileUploadUrlRequest(WixModel):
    mime_type: str = Field(min_length=1, max_length=100)
    file_name: str | None = Field(default=None, max_length=1000)
    size_in_bytes: Int64 | None = Field(default=None, ge=0)
    parent_folder_id: FolderId | None = None
    private: bool | None = None
    labels: list[Label] | None = Field(default=None, max_length=50)
    external_info: ExternalInfo | None = None
    file_path: str | None = Field(default=None, max_length=100)


class GenerateFileUploadUrlResponse(WixModel):
    upload_url: str


class GenerateFileResumableUploadUrlRequest(WixModel):
    mime_type: str = Field(min_length=1, max_length=100)
    file_name: str | None = Field(default=None, max_length=1000)
    size_in_bytes: Int64 | None = Field(default=None, ge=0)
    parent_folder_id: FolderId | None = None
    private: bool | None = None
    labels: list[Label] | None = Field(default=None, max_length=500)
    file_path: str | None = Field(default=None, max_length=100)
    upload_protocol: UploadProtocol | None = None


class GenerateFileResumableUploadUrlResponse(WixModel):
    upload_protocol: UploadProtocol = UploadProtocol.TUS
    upload_url: str
    upload_token: str


class UploadFileResponse(WixModel):
    """What the upload ``PUT`` (plain or the resumable finalisation) answers."""

    file: FileDescriptor


class ImportFileRequest(WixModel):
    url: str = Field(min_length=2, max_length=4000)
    media_type: MediaType | None = None
    display_name: str | None = Field(default=None, max_length=1000)
    parent_folder_id: FolderId | None = None
    file_path: str | None = Field(default=None, max_length=100)
    private: bool | None = None
    labels: list[Label] | None = Field(default=None, max_length=500)
    mime_type: str | None = Field(default=None, max_length=100)
    external_info: ExternalInfo | None = None
    url_params: dict[str, Any] | None = None
    url_headers: dict[str, Any] | None = None


class ImportFileResponse(WixModel):
    file: FileDescriptor


class ListFilesRequest(WixModel):
    """F11 and F16; sent as query parameters."""

    parent_folder_id: FolderId | None = None
    media_types: list[str] | None = Field(default=None, max_length=30)
    private: bool | None = None
    sort: Sorting | None = None
    paging: CursorPaging | None = None


class SearchFilesRequest(WixModel):
    search: str | None = Field(default=None, max_length=200)
    root_folder: RootFolder | None = None
    media_types: list[str] | None = Field(default=None, max_length=30)
    private: bool | None = None
    sort: Sorting | None = None
    paging: CursorPaging | None = None


class FilesPage(WixModel):
    """F11, F12 and F16 answer this."""

    files: list[FileDescriptor]
    next_cursor: PagingMetadataV2


class BulkDeleteFilesRequest(WixModel):
    file_ids: list[FileId] = Field(min_length=1, max_length=1000)
    permanent: bool | None = None


class BulkRestoreFilesRequest(WixModel):
    file_ids: list[FileId] = Field(min_length=1, max_length=1000)


# --- folders --------------------------------------------------------------------------------


class CreateFolderRequest(WixModel):
    display_name: str = Field(min_length=1, max_length=1000)
    parent_folder_id: FolderId | None = None


class FolderResponse(WixModel):
    """D1, D2 and D5 answer this."""

    folder: Folder


class ListFoldersRequest(WixModel):
    """D3 and D9; sent as query parameters."""

    parent_folder_id: FolderId | None = None
    sort: Sorting | None = None
    paging: CursorPaging | None = None


class SearchFoldersRequest(WixModel):
    root_folder: RootFolder | None = None
    sort: Sorting | None = None
    paging: CursorPaging | None = None
    search: str | None = Field(default=None, max_length=200)


class FoldersPage(WixModel):
    folders: list[Folder]
    next_cursor: PagingMetadataV2


class FolderUpdate(WixModel):
    id: FolderId
    display_name: str | None = Field(default=None, min_length=1, max_length=1000)
    parent_folder_id: FolderId | None = None


class UpdateFolderRequest(WixModel):
    folder: FolderUpdate
    field_mask: str | FieldMask | None = None


class GenerateFolderDownloadUrlResponse(WixModel):
    download_url: str


class BulkDeleteFoldersRequest(WixModel):
    folder_ids: list[FolderId] = Field(min_length=1, max_length=100)
    permanent: bool | None = None


class BulkRestoreFoldersRequest(WixModel):
    folder_ids: list[FolderId] = Field(min_length=1, max_length=100)
