"""The shared REST shapes: camelCase on the wire, int64 as strings, unknown fields ignored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from media_mcp.wix import messages as msg
from media_mcp.wix import models as m


def test_descriptor_round_trip_uses_wix_field_names() -> None:
    descriptor = m.FileDescriptor(
        id="2acbb8_86485e224dd84143ba2f228777217bb7~mv2.jpeg",
        display_name="cat.jpeg",
        parent_folder_id="media-root",
        size_in_bytes=15359,
        media_type=m.MediaType.IMAGE,
        created_date=datetime(2022, 9, 11, 15, 13, 24, tzinfo=UTC),
        media=m.FileMedia(image=m.ImageMedia(image=m.Image(id="x", url="", width=1, height=2))),
    )
    wire = descriptor.to_wire()
    assert wire["sizeInBytes"] == "15359"
    assert wire["displayName"] == "cat.jpeg"
    assert wire["parentFolderId"] == "media-root"
    assert wire["createdDate"] == "2022-09-11T15:13:24.000Z"
    assert wire["media"] == {"image": {"image": {"id": "x", "url": "", "height": 2, "width": 1}}}
    assert "sourceUrl" not in wire
    assert m.FileDescriptor.model_validate(wire) == descriptor


def test_parsing_tolerates_unknown_fields_nulls_and_both_timestamp_forms() -> None:
    parsed = m.FileDescriptor.model_validate(
        {
            "id": "a",
            "displayName": "b",
            "sizeInBytes": "12",
            "internalTags": ["_fileOrigin_uploaded"],
            "sourceUrl": None,
            "createdDate": "2022-08-21T15:39:09Z",
            "updatedDate": "2022-09-11T15:13:24.000Z",
            "media": {"image": {"image": {"id": "a", "url": "u", "width": 1, "height": 1}, "colors": None}},
        }
    )
    assert parsed.size_in_bytes == 12
    assert parsed.source_url is None
    assert parsed.created_date == datetime(2022, 8, 21, 15, 39, 9, tzinfo=UTC)
    assert parsed.media is not None and parsed.media.image is not None


def test_paging_metadata_and_error_body_shapes() -> None:
    page = msg.FilesPage.model_validate({"files": [], "nextCursor": {"cursors": {"next": ""}, "hasNext": False}})
    assert page.next_cursor.cursors.next == ""
    assert page.next_cursor.has_next is False
    body = m.ErrorBody.model_validate(
        {
            "message": "m",
            "details": {
                "validationError": {"fieldViolations": [{"field": "fileId", "ruleName": "RESOURCE_NOT_FOUND"}]}
            },
        }
    )
    assert body.details.validation_error is not None
    assert body.details.validation_error.field_violations[0].rule_name == "RESOURCE_NOT_FOUND"


def test_request_limits_follow_the_documentation() -> None:
    with pytest.raises(ValidationError):
        msg.GetFileDescriptorsRequest(file_ids=[str(i) for i in range(101)])
    with pytest.raises(ValidationError):
        msg.GenerateFileUploadUrlRequest(mime_type="image/png", labels=["x"] * 51)
    msg.GenerateFileResumableUploadUrlRequest(mime_type="image/png", labels=["x"] * 500)
    with pytest.raises(ValidationError):
        msg.BulkDeleteFoldersRequest(folder_ids=["f"] * 101)
    msg.BulkDeleteFilesRequest(file_ids=["f"] * 1000)
    with pytest.raises(ValidationError):
        m.CursorPaging(limit=101)
    with pytest.raises(ValidationError):
        msg.GenerateFileDownloadUrlRequest(file_id="a", expiration_in_minutes=525601)
    assert msg.GenerateFileUploadUrlRequest(mime_type="a/b", size_in_bytes=5).to_wire()["sizeInBytes"] == "5"
