"""Descriptors as a Wix client reads them: one media key per type, int64 sizes as strings, UTC times in ms."""

from __future__ import annotations

import pytest

from tests.conftest import Api, FakeClock, PNG_16x8

pytestmark = pytest.mark.anyio

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="3" height="4"/>'

KINDS = [  # file name, declared MIME, content, media type, the one key under "media" (video, audio: test_processing)
    ("cat.png", "image/png", PNG_16x8, "IMAGE", "image"),
    ("logo.svg", "image/svg+xml", SVG, "VECTOR", "vector"),
    ("notes.txt", "text/plain", b"hello notes\n", "DOCUMENT", "document"),
    ("pack.zip", "application/zip", b"no archive inside", "ARCHIVE", "archive"),
    ("chair.glb", "model/gltf-binary", b"no model inside", "MODEL3D", "model3d"),  # Wix's spelling, not model3D
]


@pytest.mark.parametrize(("name", "mime", "data", "media_type", "key"), KINDS, ids=[k[3] for k in KINDS])
async def test_a_ready_file_has_one_media_key_named_for_its_type(
    api: Api, name: str, mime: str, data: bytes, media_type: str, key: str
) -> None:
    file = await api.upload(name, data, mime)
    assert (file["mediaType"], file["operationStatus"]) == (media_type, "READY")
    assert list(file["media"]) == [key]
    assert file["sizeInBytes"] == str(len(data))  # an int64: a string of digits
    media = file["media"][key]
    if key in ("audio", "archive", "model3d"):
        assert media["sizeInBytes"] == str(len(data))
    if key == "image":  # processed: its thumbnail is a small copy
        assert media["image"]["id"] == file["id"]
        assert media["image"]["url"] == file["url"]
        assert file["thumbnailUrl"].endswith("/thumbnail")
    elif key == "vector":
        assert media["image"]["id"] == file["id"]
        assert media["image"]["url"] == file["url"] == file["thumbnailUrl"]
    else:
        assert media["id"] == file["id"]
        assert file["thumbnailUrl"].endswith(f"/static/icons/{media_type.lower()}.svg")
        assert (await api.http.get(file["thumbnailUrl"])).status_code == 200
    assert (await api.ok("GET", "/files/get-file-by-id", params={"fileId": file["id"]}))["file"] == file


async def test_a_file_of_no_known_type_has_no_media(api: Api) -> None:
    file = await api.upload("data.bin", b"\x00\x01\x02", "application/octet-stream")
    assert file["mediaType"] == "OTHER"
    assert "media" not in file
    assert file["thumbnailUrl"].endswith("/static/icons/other.svg")


async def test_times_are_utc_with_milliseconds_cut_not_rounded(api: Api, clock: FakeClock) -> None:
    clock.now = 1_800_000_000.1239
    folder_id = await api.folder("Pets")
    file = await api.upload("cat.png", PNG_16x8, "image/png", parentFolderId=folder_id)
    assert file["createdDate"] == file["updatedDate"] == "2027-01-15T08:00:00.123Z"
    clock.now = 1_800_000_123.9996
    renamed = await api.ok(
        "PATCH", "/files/update-file-descriptor", json={"file": {"id": file["id"], "displayName": "dog.png"}}
    )
    assert renamed["file"]["createdDate"] == "2027-01-15T08:00:00.123Z"
    assert renamed["file"]["updatedDate"] == "2027-01-15T08:02:03.999Z"
    folder = (await api.ok("GET", f"/folders/{folder_id}"))["folder"]
    assert folder["createdDate"] == folder["updatedDate"] == "2027-01-15T08:00:00.123Z"


async def test_a_system_folder_has_no_parent_and_no_dates(api: Api) -> None:
    root = (await api.ok("GET", "/folders/media-root"))["folder"]
    assert root == {"id": "media-root", "displayName": "Site Files", "state": "OK", "siteId": api.library.site_id}
