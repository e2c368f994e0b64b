"""The Files service endpoints, over in-process ASGI and a loopback socket."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.conftest import Api, PNG_16x8

pytestmark = pytest.mark.anyio


async def test_upload_then_get_one_and_many(api: Api) -> None:
    png = await api.upload("cat.png", PNG_16x8, "image/png", labels=["pets"])
    doc = await api.upload("notes.txt", b"hello notes\n", "text/plain")

    one = (await api.ok("GET", "/files/get-file-by-id", params={"fileId": png["id"]}))["file"]
    assert one == png
    assert one["mediaType"] == "IMAGE"
    assert one["sizeInBytes"] == str(len(PNG_16x8))
    assert one["hash"] == hashlib.md5(PNG_16x8).hexdigest()
    assert one["media"]["image"]["image"]["width"] == 16
    assert one["media"]["image"]["image"]["height"] == 8
    assert one["labels"] == ["pets"]
    assert one["parentFolderId"] == "media-root"
    assert one["operationStatus"] == "READY"
    assert one["state"] == "OK"
    assert one["id"].endswith("~mv2.png")

    many = await api.ok("POST", "/files/get-files", json={"fileIds": [doc["id"], png["id"]]})
    assert [f["id"] for f in many["files"]] == [doc["id"], png["id"]]
    assert many["files"][0]["mediaType"] == "DOCUMENT"
    assert "document" in many["files"][0]["media"]


async def test_wix_media_url_is_accepted_as_an_id(api: Api) -> None:
    png = await api.upload("cat.png", PNG_16x8, "image/png")
    media_url = f"wix:image://v1/{png['id']}/cat.png#originWidth=16&originHeight=8"
    got = await api.ok("GET", "/files/get-file-by-id", params={"fileId": media_url})
    assert got["file"]["id"] == png["id"]
    many = await api.ok("POST", "/files/get-files", json={"fileIds": [media_url]})
    assert many["files"][0]["id"] == png["id"]


@pytest.mark.parametrize(
    "file_id",
    ["nope", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "a/b", "x" * 1500, "'; DROP TABLE files; --", "\x00"],
)
async def test_unknown_or_hostile_file_id_is_resource_not_found(api: Api, file_id: str) -> None:
    response = await api.call("GET", "/files/get-file-by-id", params={"fileId": file_id})
    assert response.status_code == 400
    assert response.json()["details"]["applicationError"]["code"] == "RESOURCE_NOT_FOUND"
    # the library still works afterwards
    assert (await api.ok("POST", "/files/search", json={}))["files"] == []


async def test_get_files_with_one_missing_id_fails_whole(api: Api) -> None:
    png = await api.upload("cat.png", PNG_16x8, "image/png")
    response = await api.call("POST", "/files/get-files", json={"fileIds": [png["id"], "missing"]})
    assert response.status_code == 400
    body = response.json()["details"]["applicationError"]
    assert body["code"] == "RESOURCE_NOT_FOUND"
    assert body["data"]["ids"] == ["missing"]


async def test_get_files_limits(api: Api) -> None:
    empty = await api.call("POST", "/files/get-files", json={"fileIds": []})
    assert empty.status_code == 400
    assert empty.json()["details"]["validationError"]["fieldViolations"][0]["field"] == "fileIds"
    too_many = await api.call("POST", "/files/get-files", json={"fileIds": [f"id{i}" for i in range(101)]})
    assert too_many.status_code == 400


async def test_update_file_rename_move_and_labels(api: Api) -> None:
    png = await api.upload("cat.png", PNG_16x8, "image/png")
    folder = await api.folder("Pets")
    updated = await api.ok(
        "PATCH",
        "/files/update-file-descriptor",
        json={"file": {"id": png["id"], "displayName": "kitty.png", "parentFolderId": folder, "labels": ["a", "b"]}},
    )
    file = updated["file"]
    assert (file["displayName"], file["parentFolderId"], file["labels"]) == ("kitty.png", folder, ["a", "b"])
    listed = await api.ok("GET", "/files", params={"parentFolderId": folder})
    assert [f["id"] for f in listed["files"]] == [png["id"]]
    found = await api.ok("POST", "/files/search", json={"search": "kitty"})
    assert [f["id"] for f in found["files"]] == [png["id"]]
    assert (await api.ok("POST", "/files/search", json={"search": "cat.png"}))["files"] == []


async def test_update_file_respects_field_mask_and_rejects_empty(api: Api) -> None:
    png = await api.upload("cat.png", PNG_16x8, "image/png")
    masked = await api.ok(
        "PATCH",
        "/files/update-file-descriptor",
        json={"file": {"id": png["id"], "displayName": "new.png", "labels": ["x"]}, "fieldMask": "displayName"},
    )
    assert masked["file"]["displayName"] == "new.png"
    assert masked["file"]["labels"] == []
    empty = await api.call("PATCH", "/files/update-file-descriptor", json={"file": {"id": png["id"]}})
    assert empty.status_code == 400
    assert empty.json()["details"]["applicationError"]["code"] == "FIELD_MASK_IS_EMPTY_OR_MISSING"


async def test_update_file_limits_and_bad_targets(api: Api) -> None:
    png = await api.upload("cat.png", PNG_16x8, "image/png")
    long_name = await api.call(
        "PATCH", "/files/update-file-descriptor", json={"file": {"id": png["id"], "displayName": "n" * 256}}
    )
    assert long_name.status_code == 400
    too_many_labels = await api.call(
        "PATCH", "/files/update-file-descriptor", json={"file": {"id": png["id"], "labels": ["l"] * 501}}
    )
    assert too_many_labels.status_code == 400
    long_label = await api.call(
        "PATCH", "/files/update-file-descriptor", json={"file": {"id": png["id"], "labels": ["l" * 201]}}
    )
    assert long_label.status_code == 400
    to_nowhere = await api.call(
        "PATCH", "/files/update-file-descriptor", json={"file": {"id": png["id"], "parentFolderId": "nowhere"}}
    )
    assert to_nowhere.status_code == 400
    to_trash = await api.call(
        "PATCH", "/files/update-file-descriptor", json={"file": {"id": png["id"], "parentFolderId": "trash-root"}}
    )
    assert to_trash.status_code == 400
    still = await api.ok("GET", "/files/get-file-by-id", params={"fileId": png["id"]})
    assert still["file"] == png


async def test_names_with_injection_text_are_stored_verbatim_and_never_used_as_paths(api: Api) -> None:
    hostile = "../../etc/passwd\u202e<script>alert(1)</script> ignore previous instructions"
    file = await api.upload("x.txt", b"data", "text/plain")
    renamed = await api.ok(
        "PATCH", "/files/update-file-descriptor", json={"file": {"id": file["id"], "displayName": hostile}}
    )
    assert renamed["file"]["displayName"] == hostile
    assert "/" not in renamed["file"]["id"]
    blobs = list((api.library.data.blobs).rglob("*"))
    assert all(api.library.data.blobs in p.parents for p in blobs)
    assert not any("passwd" in p.name for p in blobs)


async def test_generate_upload_url_validation(api: Api) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"mimeType": "not a mime"}, "UNSUPPORTED_FILE_FORMAT"),
        ({"mimeType": "image/png", "sizeInBytes": "0"}, "ZERO_FILE_SIZE"),
        ({"mimeType": "image/png", "sizeInBytes": str(10**13)}, "FILE_SIZE_OVER_LIMIT"),
        ({"mimeType": "image/png", "fileName": "song.mp3"}, "MISMATCH_MIME_TYPE"),
        ({"mimeType": "image/png", "parentFolderId": "missing"}, "RESOURCE_NOT_FOUND"),
    ]
    for body, code in cases:
        response = await api.call("POST", "/files/generate-upload-url", json=body)
        assert response.status_code == 400, body
        assert response.json()["details"]["applicationError"]["code"] == code, body
    labels = await api.call("POST", "/files/generate-upload-url", json={"mimeType": "image/png", "labels": ["x"] * 51})
    assert labels.json()["details"]["validationError"]["fieldViolations"][0]["field"] == "labels"
    missing = await api.call("POST", "/files/generate-upload-url", json={})
    violation = missing.json()["details"]["validationError"]["fieldViolations"][0]
    assert (violation["field"], violation["violatedRule"]) == ("mimeType", "REQUIRED_FIELD")


async def test_resumable_url_shape(api: Api) -> None:
    minted = await api.ok(
        "POST",
        "/files/generate-resumable-upload-url",
        json={"mimeType": "video/mp4", "fileName": "clip.mp4", "sizeInBytes": "100", "uploadProtocol": "TUS"},
    )
    assert minted["uploadProtocol"] == "TUS"
    assert minted["uploadUrl"].endswith("/upload/tus")
    assert minted["uploadToken"].count(".") == 2


async def test_file_type_is_read_from_content_not_the_claimed_mime(api: Api) -> None:
    sneaky = await api.upload("photo.bin", PNG_16x8, "application/octet-stream")
    assert sneaky["mediaType"] == "IMAGE"
    text = await api.upload("readme", b"just text", "text/plain")
    assert text["mediaType"] == "DOCUMENT"
    svg = await api.upload(
        "logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="3" height="4"/>', "image/svg+xml"
    )
    assert svg["mediaType"] == "VECTOR"
    assert svg["media"]["vector"]["image"]["width"] == 3


async def test_private_file_descriptor_hides_media_urls(api: Api) -> None:
    secret = await api.upload("secret.png", PNG_16x8, "image/png", private=True)
    assert secret["private"] is True
    assert secret["media"]["image"]["image"]["url"] == ""
    assert "/static/icons/" in secret["thumbnailUrl"]
    public = await api.upload("open.png", PNG_16x8, "image/png")
    assert public["media"]["image"]["image"]["url"] == public["url"]


async def test_search_matches_name_mime_and_labels(api: Api) -> None:
    beach = await api.upload("beach-sunset.png", PNG_16x8, "image/png", labels=["holiday"])
    doc = await api.upload("report.pdf", b"%PDF-1.4\n%\xe2\xe3\n", "application/pdf")
    assert [f["id"] for f in (await api.ok("POST", "/files/search", json={"search": "SUNSET"}))["files"]] == [
        beach["id"]
    ]
    assert [f["id"] for f in (await api.ok("POST", "/files/search", json={"search": "holiday"}))["files"]] == [
        beach["id"]
    ]
    assert [f["id"] for f in (await api.ok("POST", "/files/search", json={"search": "pdf"}))["files"]] == [doc["id"]]
    two_words = await api.ok("POST", "/files/search", json={"search": "beach png"})
    assert [f["id"] for f in two_words["files"]] == [beach["id"]]
    short = await api.ok("POST", "/files/search", json={"search": "re"})
    assert [f["id"] for f in short["files"]] == [doc["id"]]
    quote = await api.ok("POST", "/files/search", json={"search": 'he said "hi" OR 1=1 --'})
    assert quote["files"] == []


async def test_control_characters_in_a_search_are_ignored(asgi_api: Api) -> None:
    cat = await asgi_api.upload("cat.txt", b"c", "text/plain")
    await asgi_api.upload("dog.txt", b"d", "text/plain")
    for text in ("cat\x00", "\x00cat", "ca\x00t c", "cat\x01\x7f"):
        found = await asgi_api.ok("POST", "/files/search", json={"search": text})
        assert [f["id"] for f in found["files"]] == [cat["id"]], repr(text)
    everything = await asgi_api.ok("POST", "/files/search", json={"search": "\x00 \x1f"})
    assert len(everything["files"]) == 2


async def test_short_search_words_match_the_indexed_text_only(asgi_api: Api) -> None:
    cat = await asgi_api.upload("cat.txt", b"a", "text/plain")
    dog = await asgi_api.upload("dog.txt", b"b", "text/plain", labels=["x", "y"])
    summer = await asgi_api.upload("Ünïcødé.png", PNG_16x8, "image/png", labels=["été"])

    async def search(text: str) -> list[str]:
        found = await asgi_api.ok("POST", "/files/search", json={"search": text})
        return sorted(f["id"] for f in found["files"])

    assert await search("[]") == []
    assert await search('",') == []
    assert await search("t\\") == []
    assert await search("ét") == [summer["id"]]
    assert await search("ÉT") == [summer["id"]]
    assert await search("ün") == [summer["id"]]
    assert await search("ÜN") == [summer["id"]]
    assert await search("x") == sorted([cat["id"], dog["id"]])  # '.txt', 'text/plain' and a label
    assert await search("y") == [dog["id"]]


async def test_search_filters_and_sorts(api: Api) -> None:
    small = await api.upload("b-small.txt", b"x", "text/plain")
    big = await api.upload("a-big.png", PNG_16x8, "image/png", private=True)
    api.library.clock.advance(5)  # type: ignore[attr-defined]
    newest = await api.upload("c-new.txt", b"xyz", "text/plain")

    default = await api.ok("POST", "/files/search", json={})
    assert default["files"][0]["id"] == newest["id"]
    by_name = await api.ok("POST", "/files/search", json={"sort": {"fieldName": "displayName", "order": "ASC"}})
    assert [f["displayName"] for f in by_name["files"]] == ["a-big.png", "b-small.txt", "c-new.txt"]
    by_size = await api.ok("POST", "/files/search", json={"sort": {"fieldName": "sizeInBytes", "order": "DESC"}})
    assert by_size["files"][0]["id"] == big["id"]
    assert by_size["files"][-1]["id"] == small["id"]
    images = await api.ok("POST", "/files/search", json={"mediaTypes": ["IMAGE"]})
    assert [f["id"] for f in images["files"]] == [big["id"]]
    private = await api.ok("POST", "/files/search", json={"private": True})
    assert [f["id"] for f in private["files"]] == [big["id"]]
    public = await api.ok("POST", "/files/search", json={"private": False})
    assert big["id"] not in {f["id"] for f in public["files"]}


async def test_bad_enums_and_limits_are_rejected(api: Api) -> None:
    bad_type = await api.call("POST", "/files/search", json={"mediaTypes": ["OTHER"]})
    assert bad_type.json()["details"]["applicationError"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert "IMAGE" in bad_type.json()["details"]["applicationError"]["data"]["allowedValues"]
    bad_sort = await api.call("POST", "/files/search", json={"sort": {"fieldName": "hash"}})
    assert bad_sort.json()["details"]["applicationError"]["code"] == "UNSUPPORTED_SORT_VALUE"
    bad_root = await api.call("POST", "/files/search", json={"rootFolder": "EVERYTHING"})
    assert bad_root.status_code == 400
    assert bad_root.json()["details"]["validationError"]["fieldViolations"][0]["field"] == "rootFolder"
    over_page = await api.call("GET", "/files", params={"paging.limit": "101"})
    assert over_page.status_code == 400
    long_search = await api.call("POST", "/files/search", json={"search": "s" * 201})
    assert long_search.status_code == 400
    bad_list_type = await api.call("GET", "/files", params=[("mediaTypes", "IMAGE"), ("mediaTypes", "FLASH")])
    assert bad_list_type.json()["details"]["applicationError"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    forged_cursor = await api.call("POST", "/files/search", json={"paging": {"cursor": "not-a-cursor"}})
    assert forged_cursor.status_code == 400


async def test_list_files_is_direct_children_only(api: Api) -> None:
    outer = await api.folder("outer")
    inner = await api.folder("inner", outer)
    top = await api.upload("top.txt", b"1", "text/plain")
    mid = await api.upload("mid.txt", b"2", "text/plain", parentFolderId=outer)
    deep = await api.upload("deep.txt", b"3", "text/plain", parentFolderId=inner)
    assert [f["id"] for f in (await api.ok("GET", "/files"))["files"]] == [top["id"]]
    assert [f["id"] for f in (await api.ok("GET", "/files", params={"parentFolderId": outer}))["files"]] == [mid["id"]]
    everything = await api.ok("POST", "/files/search", json={"rootFolder": "MEDIA_ROOT"})
    assert {f["id"] for f in everything["files"]} == {top["id"], mid["id"], deep["id"]}


async def test_visitor_uploads_is_its_own_root(api: Api) -> None:
    mine = await api.upload("site.txt", b"1", "text/plain")
    visitor = await api.upload("visitor.txt", b"2", "text/plain", parentFolderId="visitor-uploads")
    media = await api.ok("POST", "/files/search", json={"rootFolder": "MEDIA_ROOT"})
    assert [f["id"] for f in media["files"]] == [mine["id"]]
    visitors = await api.ok("POST", "/files/search", json={"rootFolder": "VISITOR_UPLOADS_ROOT"})
    assert [f["id"] for f in visitors["files"]] == [visitor["id"]]
    system = await api.ok("GET", "/folders/visitor-uploads")
    assert system["folder"]["id"] == "visitor-uploads"


async def test_trash_and_restore_files(api: Api) -> None:
    folder = await api.folder("docs")
    a = await api.upload("a.txt", b"a", "text/plain", parentFolderId=folder)
    b = await api.upload("b.txt", b"b", "text/plain")
    await api.ok("POST", "/bulk/files/delete", json={"fileIds": [a["id"], b["id"]]})
    again = await api.ok("POST", "/bulk/files/delete", json={"fileIds": [a["id"]]})  # already trashed: not an error
    assert again == {}

    trashed = await api.ok("GET", "/files/get-file-by-id", params={"fileId": a["id"]})
    assert (trashed["file"]["parentFolderId"], trashed["file"]["state"]) == ("trash-root", "DELETED")
    deleted = await api.ok("GET", "/trash-bin/files")
    assert {f["id"] for f in deleted["files"]} == {a["id"], b["id"]}
    assert (await api.ok("POST", "/files/search", json={}))["files"] == []
    in_trash = await api.ok("POST", "/files/search", json={"rootFolder": "TRASH_ROOT"})
    assert {f["id"] for f in in_trash["files"]} == {a["id"], b["id"]}
    from_folder = await api.ok("GET", "/trash-bin/files", params={"parentFolderId": folder})
    assert [f["id"] for f in from_folder["files"]] == [a["id"]]

    await api.ok("POST", "/bulk/trash-bin/files/restore", json={"fileIds": [a["id"], b["id"]]})
    back = await api.ok("POST", "/files/get-files", json={"fileIds": [a["id"], b["id"]]})
    assert [(f["parentFolderId"], f["state"]) for f in back["files"]] == [(folder, "OK"), ("media-root", "OK")]
    assert (await api.ok("GET", "/trash-bin/files"))["files"] == []


async def test_permanent_delete_removes_rows_and_bytes(api: Api) -> None:
    file = await api.upload("gone.txt", b"bye", "text/plain")
    blobs_before = [p for p in api.library.data.blobs.rglob("*") if p.is_file()]
    assert len(blobs_before) == 1
    await api.ok("POST", "/bulk/files/delete", json={"fileIds": [file["id"]], "permanent": True})
    missing = await api.call("GET", "/files/get-file-by-id", params={"fileId": file["id"]})
    assert missing.status_code == 400
    assert (await api.ok("GET", "/trash-bin/files"))["files"] == []
    assert [p for p in api.library.data.blobs.rglob("*") if p.is_file()] == []


async def test_bulk_calls_skip_unknown_ids(api: Api) -> None:
    """Wix reports no per-item failures for bulk delete/restore (§13): unknown ids are skipped, the rest acted on."""
    file = await api.upload("keep.txt", b"k", "text/plain")
    other = await api.upload("other.txt", b"o", "text/plain")
    only_unknown = await api.call("POST", "/bulk/files/delete", json={"fileIds": ["unknown", "a/b"]})
    assert only_unknown.status_code == 200, only_unknown.text
    assert only_unknown.json() == {}
    kept = await api.ok("POST", "/files/get-files", json={"fileIds": [file["id"], other["id"]]})
    assert [f["state"] for f in kept["files"]] == ["OK", "OK"]
    assert (await api.ok("GET", "/trash-bin/files"))["files"] == []

    trashed = await api.call("POST", "/bulk/files/delete", json={"fileIds": [file["id"], "unknown"]})
    assert (trashed.status_code, trashed.json()) == (200, {})
    gone = await api.ok("GET", "/files/get-file-by-id", params={"fileId": file["id"]})
    assert (gone["file"]["state"], gone["file"]["parentFolderId"]) == ("DELETED", "trash-root")
    restored = await api.call("POST", "/bulk/trash-bin/files/restore", json={"fileIds": ["unknown", file["id"]]})
    assert (restored.status_code, restored.json()) == (200, {})
    back = await api.ok("GET", "/files/get-file-by-id", params={"fileId": file["id"]})
    assert (back["file"]["state"], back["file"]["parentFolderId"]) == ("OK", "media-root")
    erased = await api.call("POST", "/bulk/files/delete", json={"fileIds": ["unknown", file["id"]], "permanent": True})
    assert (erased.status_code, erased.json()) == (200, {})
    assert (await api.call("GET", "/files/get-file-by-id", params={"fileId": file["id"]})).status_code == 400
    still = await api.ok("GET", "/files/get-file-by-id", params={"fileId": other["id"]})
    assert still["file"]["state"] == "OK"
    too_many = await api.call("POST", "/bulk/files/delete", json={"fileIds": ["x"] * 1001})
    assert too_many.status_code == 400
    restore_many = await api.call("POST", "/bulk/trash-bin/files/restore", json={"fileIds": ["x"] * 1001})
    assert restore_many.status_code == 400
