"""The Folders service endpoints, and trash round trips of nested folders."""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.conftest import Api, PNG_16x8

pytestmark = pytest.mark.anyio


async def test_create_get_list_and_search_folders(api: Api) -> None:
    photos = await api.folder("Photos")
    trips = await api.folder("Trips 2024", photos)
    got = await api.ok("GET", f"/folders/{trips}")
    assert got["folder"]["displayName"] == "Trips 2024"
    assert got["folder"]["parentFolderId"] == photos
    assert got["folder"]["state"] == "OK"
    top = await api.ok("GET", "/folders")
    assert [f["id"] for f in top["folders"]] == [photos]
    inside = await api.ok("GET", "/folders", params={"parentFolderId": photos})
    assert [f["id"] for f in inside["folders"]] == [trips]
    everywhere = await api.ok("POST", "/folders/search", json={})
    assert {f["id"] for f in everywhere["folders"]} == {photos, trips}
    named = await api.ok("POST", "/folders/search", json={"search": "trips"})
    assert [f["id"] for f in named["folders"]] == [trips]
    root = await api.ok("GET", "/folders/media-root")
    assert root["folder"]["id"] == "media-root"


async def test_bad_folder_names_parents_and_ids_and_system_folders_are_refused(api: Api) -> None:
    assert (await api.call("POST", "/folders", json={"displayName": ""})).status_code == 400
    assert (await api.call("POST", "/folders", json={"displayName": "n" * 1001})).status_code == 400
    assert (await api.call("POST", "/folders", json={"displayName": "x", "parentFolderId": "nope"})).status_code == 400
    trash_parent = await api.call("POST", "/folders", json={"displayName": "x", "parentFolderId": "trash-root"})
    assert trash_parent.status_code == 400
    missing = await api.call("GET", "/folders/0123456789abcdef")
    assert missing.json()["details"]["applicationError"]["code"] == "RESOURCE_NOT_FOUND"
    traversal = await api.call("GET", "/folders/..%2F..%2Fetc")
    assert traversal.status_code in (400, 404)
    bad_sort = await api.call("POST", "/folders/search", json={"sort": {"fieldName": "sizeInBytes"}})
    assert bad_sort.json()["details"]["applicationError"]["code"] == "UNSUPPORTED_SORT_VALUE"
    system = await api.call("PATCH", "/folders/media-root", json={"folder": {"id": "media-root", "displayName": "x"}})
    assert system.status_code == 400
    delete_system = await api.call("POST", "/bulk/folders/delete", json={"folderIds": ["trash-root"]})
    assert delete_system.status_code == 400
    too_many = await api.call("POST", "/bulk/folders/delete", json={"folderIds": ["f"] * 101})
    assert too_many.status_code == 400


async def test_rename_and_move_folder_and_refuse_cycles(api: Api) -> None:
    a = await api.folder("A")
    b = await api.folder("B", a)
    c = await api.folder("C")
    renamed = await api.ok("PATCH", f"/folders/{b}", json={"folder": {"id": b, "displayName": "Bee"}})
    assert renamed["folder"]["displayName"] == "Bee"
    moved = await api.ok("PATCH", f"/folders/{b}", json={"folder": {"id": b, "parentFolderId": c}})
    assert moved["folder"]["parentFolderId"] == c
    cycle = await api.call("PATCH", f"/folders/{c}", json={"folder": {"id": c, "parentFolderId": b}})
    assert cycle.status_code == 400
    assert cycle.json()["details"]["applicationError"]["code"] == "FOLDER_CYCLE"
    itself = await api.call("PATCH", f"/folders/{c}", json={"folder": {"id": c, "parentFolderId": c}})
    assert itself.status_code == 400
    mismatch = await api.call("PATCH", f"/folders/{c}", json={"folder": {"id": a, "displayName": "x"}})
    assert mismatch.status_code == 400
    empty = await api.call("PATCH", f"/folders/{c}", json={"folder": {"id": c}})
    assert empty.json()["details"]["applicationError"]["code"] == "FIELD_MASK_IS_EMPTY_OR_MISSING"


async def test_moving_a_folder_into_visitor_uploads_moves_its_files_root(api: Api) -> None:
    a = await api.folder("A")
    inner = await api.folder("inner", a)
    file = await api.upload("f.txt", b"f", "text/plain", parentFolderId=inner)
    await api.ok("PATCH", f"/folders/{a}", json={"folder": {"id": a, "parentFolderId": "visitor-uploads"}})
    media = await api.ok("POST", "/files/search", json={"rootFolder": "MEDIA_ROOT"})
    assert media["files"] == []
    visitors = await api.ok("POST", "/files/search", json={"rootFolder": "VISITOR_UPLOADS_ROOT"})
    assert [f["id"] for f in visitors["files"]] == [file["id"]]
    folders = await api.ok("POST", "/folders/search", json={"rootFolder": "VISITOR_UPLOADS_ROOT"})
    assert {f["id"] for f in folders["folders"]} == {a, inner}


async def test_trash_and_restore_nested_folders(api: Api) -> None:
    outer = await api.folder("outer")
    inner = await api.folder("inner", outer)
    deep = await api.folder("deep", inner)
    f_outer = await api.upload("o.txt", b"o", "text/plain", parentFolderId=outer)
    f_deep = await api.upload("d.txt", b"d", "text/plain", parentFolderId=deep)
    loose = await api.upload("loose.txt", b"l", "text/plain", parentFolderId=inner)
    # trashed on its own first: it must stay in the trash when its folder comes back
    await api.ok("POST", "/bulk/files/delete", json={"fileIds": [loose["id"]]})

    await api.ok("POST", "/bulk/folders/delete", json={"folderIds": [outer]})
    assert (await api.ok("POST", "/files/search", json={}))["files"] == []
    assert (await api.ok("POST", "/folders/search", json={}))["folders"] == []
    trashed = await api.ok("GET", "/trash-bin/folders")
    assert [f["id"] for f in trashed["folders"]] == [outer]
    in_trash = await api.ok("POST", "/folders/search", json={"rootFolder": "TRASH_ROOT"})
    assert {f["id"] for f in in_trash["folders"]} == {outer, inner, deep}
    files_in_trash = await api.ok("POST", "/files/search", json={"rootFolder": "TRASH_ROOT"})
    assert {f["id"] for f in files_in_trash["files"]} == {f_outer["id"], f_deep["id"], loose["id"]}
    inside = await api.ok("GET", "/files/get-file-by-id", params={"fileId": f_deep["id"]})
    assert (inside["file"]["state"], inside["file"]["parentFolderId"]) == ("DELETED", deep)

    await api.ok("POST", "/bulk/trash-bin/folders/restore", json={"folderIds": [outer]})
    restored = await api.ok("GET", f"/folders/{outer}")
    assert (restored["folder"]["parentFolderId"], restored["folder"]["state"]) == ("media-root", "OK")
    live = await api.ok("POST", "/files/search", json={})
    assert {f["id"] for f in live["files"]} == {f_outer["id"], f_deep["id"]}
    live_folders = await api.ok("POST", "/folders/search", json={})
    assert {f["id"] for f in live_folders["folders"]} == {outer, inner, deep}
    still_trashed = await api.ok("GET", "/trash-bin/files")
    assert [f["id"] for f in still_trashed["files"]] == [loose["id"]]
    await api.ok("POST", "/bulk/trash-bin/files/restore", json={"fileIds": [loose["id"]]})
    back = await api.ok("GET", "/files/get-file-by-id", params={"fileId": loose["id"]})
    assert back["file"]["parentFolderId"] == inner


async def test_restore_when_the_original_parent_is_gone_lands_at_the_top(api: Api) -> None:
    parent = await api.folder("parent")
    child = await api.folder("child", parent)
    await api.ok("POST", "/bulk/folders/delete", json={"folderIds": [child]})
    await api.ok("POST", "/bulk/folders/delete", json={"folderIds": [parent], "permanent": True})
    await api.ok("POST", "/bulk/trash-bin/folders/restore", json={"folderIds": [child]})
    back = await api.ok("GET", f"/folders/{child}")
    assert back["folder"]["parentFolderId"] == "media-root"


async def test_permanent_folder_delete_takes_contents_and_bytes(api: Api) -> None:
    outer = await api.folder("outer")
    inner = await api.folder("inner", outer)
    file = await api.upload("f.txt", b"f", "text/plain", parentFolderId=inner)
    await api.ok("POST", "/bulk/folders/delete", json={"folderIds": [outer], "permanent": True})
    assert (await api.call("GET", f"/folders/{inner}")).status_code == 400
    assert (await api.call("GET", "/files/get-file-by-id", params={"fileId": file["id"]})).status_code == 400
    assert (await api.ok("GET", "/trash-bin/folders"))["folders"] == []
    assert [p for p in api.library.data.blobs.rglob("*") if p.is_file()] == []


async def test_uploading_into_a_trashed_folder_is_refused(api: Api) -> None:
    folder = await api.folder("doomed")
    await api.ok("POST", "/bulk/folders/delete", json={"folderIds": [folder]})
    response = await api.call(
        "POST", "/files/generate-upload-url", json={"mimeType": "text/plain", "parentFolderId": folder}
    )
    assert response.status_code == 400
    assert response.json()["details"]["applicationError"]["code"] == "FOLDER_IN_TRASH"


async def test_folder_zip_keeps_the_tree(api: Api) -> None:
    outer = await api.folder("outer")
    inner = await api.folder("in/ner", outer)
    await api.upload("top.txt", b"top", "text/plain", parentFolderId=outer)
    await api.upload("deep.png", PNG_16x8, "image/png", parentFolderId=inner)
    await api.upload("secret.txt", b"private", "text/plain", parentFolderId=inner, private=True)  # never zipped
    await api.upload("top.txt", b"second", "text/plain", parentFolderId=outer)
    minted = await api.ok("POST", f"/folders/{outer}/generate-download-url")
    response = await api.http.get(minted["downloadUrl"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = sorted(archive.namelist())
        assert names == ["in_ner/deep.png", "top (1).txt", "top.txt"]
        assert archive.read("in_ner/deep.png") == PNG_16x8
        assert {archive.read("top.txt"), archive.read("top (1).txt")} == {b"top", b"second"}
    missing = await api.call("POST", "/folders/0123456789abcdef0123456789abcdef/generate-download-url")
    assert missing.status_code == 400


async def test_bulk_folder_calls_skip_unknown_ids(asgi_api: Api) -> None:
    keep = await asgi_api.folder("keep")
    goes = await asgi_api.folder("goes")
    unknown = "0123456789abcdef0123456789abcdef"
    for path in ("/bulk/folders/delete", "/bulk/trash-bin/folders/restore"):
        response = await asgi_api.call("POST", path, json={"folderIds": [unknown, "a/b"]})
        assert (response.status_code, response.json()) == (200, {})
    assert {f["id"] for f in (await asgi_api.ok("GET", "/folders"))["folders"]} == {keep, goes}
    assert (await asgi_api.ok("GET", "/trash-bin/folders"))["folders"] == []

    trashed = await asgi_api.call("POST", "/bulk/folders/delete", json={"folderIds": [unknown, goes]})
    assert (trashed.status_code, trashed.json()) == (200, {})
    assert [f["id"] for f in (await asgi_api.ok("GET", "/trash-bin/folders"))["folders"]] == [goes]
    restored = await asgi_api.call("POST", "/bulk/trash-bin/folders/restore", json={"folderIds": [goes, unknown]})
    assert (restored.status_code, restored.json()) == (200, {})
    assert (await asgi_api.ok("GET", "/trash-bin/folders"))["folders"] == []
    erased = await asgi_api.call("POST", "/bulk/folders/delete", json={"folderIds": [unknown, goes], "permanent": True})
    assert (erased.status_code, erased.json()) == (200, {})
    assert [f["id"] for f in (await asgi_api.ok("GET", "/folders"))["folders"]] == [keep]
    system = await asgi_api.call("POST", "/bulk/folders/delete", json={"folderIds": [unknown, "media-root"]})
    assert system.status_code == 400
