"""The library writes descriptors as wire JSON by hand: each must be exactly what the REST models would write."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_mcp.library.catalog import FileRow, FolderRow
from media_mcp.library.service import Library, wire_timestamp
from media_mcp.wix import models as m

BASE = "http://127.0.0.1:8123"


def _row(media_type: str, status: str, private: bool, **extra: object) -> FileRow:
    values: dict[str, object] = {
        "id": f"abc123_{media_type.lower()}{status.lower()}{int(private)}~mv2.png",
        "display_name": "Cat picture.png",
        "parent_id": "media-root",
        "root": "MEDIA_ROOT",
        "state": "OK",
        "private": private,
        "media_type": media_type,
        "mime_type": "image/png",
        "size": 12_345_678_901,
        "hash": "0" * 32,
        "blob": "blob",
        "status": status,
        "created": 1_800_000_000.1239,
        "updated": 1_800_000_123.9996,
        "width": 640,
        "height": 480,
    }
    values.update(extra)
    return FileRow(**values)  # type: ignore[arg-type]


COMBINATIONS = list(itertools.product([t.value for t in m.MediaType], ["READY", "PENDING", "FAILED"], [False, True]))


@pytest.mark.parametrize(("media_type", "status", "private"), COMBINATIONS)
def test_file_wire_is_what_the_descriptor_model_writes(
    library: Library, media_type: str, status: str, private: bool
) -> None:
    row = _row(media_type, status, private, labels=["a", "b c"], source_url="https://example.com/x.png")
    wire = library.file_wire(row, BASE)
    assert m.FileDescriptor.model_validate(wire).to_wire() == wire
    assert wire["operationStatus"] == status and wire["private"] is private
    if status == "READY":
        assert wire["sizeInBytes"] == "12345678901" and wire["hash"] == "0" * 32
    else:
        assert "sizeInBytes" not in wire and "media" not in wire and wire["hash"] == ""


def test_file_wire_details(library: Library) -> None:
    public = library.file_wire(_row("IMAGE", "READY", False), BASE)
    assert public["url"] == public["thumbnailUrl"] == public["media"]["image"]["image"]["url"]
    assert public["media"]["image"]["image"]["url"] == f"{BASE}/static/media/{public['id']}"
    assert (public["media"]["image"]["image"]["width"], public["media"]["image"]["image"]["height"]) == (640, 480)
    assert public["createdDate"] == "2027-01-15T08:00:00.123Z"  # milliseconds truncated, as the model does
    assert public["updatedDate"] == "2027-01-15T08:02:03.999Z"
    assert "sourceUrl" not in public and public["labels"] == []
    secret = library.file_wire(_row("IMAGE", "READY", True), BASE)
    assert secret["media"]["image"]["image"]["url"] == ""  # a private file's bytes are never linked from its descriptor
    assert secret["thumbnailUrl"] == f"{BASE}/static/icons/image.svg"
    vector = library.file_wire(_row("VECTOR", "READY", False), BASE)
    assert set(vector["media"]) == {"vector"}
    odd = library.file_wire(_row("DOCUMENT", "READY", False, id="odd id/with?chars"), BASE)
    assert odd["url"] == f"{BASE}/static/media/odd%20id/with%3Fchars"


def test_folder_wire_is_what_the_folder_model_writes(library: Library) -> None:
    row = FolderRow(id="f1", display_name="Pets", parent_id="media-root", root="MEDIA_ROOT", state="DELETED",
                    created=1_800_000_000.5, updated=1_800_000_001.0)  # fmt: skip
    for wire in (library.folder_wire(row), library.system_folder_wire(m.TRASH_ROOT_ID)):
        assert m.Folder.model_validate(wire).to_wire() == wire
    assert library.folder_wire(row)["createdDate"] == "2027-01-15T08:00:00.500Z"


@settings(max_examples=2000, deadline=None)
@given(
    st.floats(min_value=0, max_value=7_000_000_000, allow_nan=False)
    | st.integers(min_value=0, max_value=7_000_000_000).map(lambda s: s + 0.9995)
    | st.integers(min_value=0, max_value=7_000_000_000).map(lambda s: s + 0.0015)
)
def test_wire_timestamps_match_the_model_to_the_millisecond(epoch: float) -> None:
    expected = m.FileDescriptor(id="x", display_name="x", created_date=datetime.fromtimestamp(epoch, UTC)).to_wire()
    assert wire_timestamp(epoch) == expected["createdDate"]
