"""The adapter against the embedded library: every method, field by field, in-process and over loopback."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from media_mcp import errors
from media_mcp.library.app import create_app
from media_mcp.library.service import Library
from media_mcp.wix import messages as msg
from media_mcp.wix import models as m
from media_mcp.wix.auth import ApiKeyAuth
from media_mcp.wix.client import WixMediaClient
from tests.conftest import FakeClock, LoopbackServer, PNG_16x8

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asgi", "socket"])
async def client(request: pytest.FixtureRequest, library: Library) -> AsyncIterator[WixMediaClient]:
    """The adapter over httpx's ASGI transport (as the server's local backend) and over a socket."""
    app = create_app(library)
    auth = ApiKeyAuth(SecretStr(library.api_key), library.site_id)
    if request.param == "asgi":
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
        async with WixMediaClient("http://library.test", auth, http=http) as wix:
            yield wix
        await http.aclose()
        return
    with LoopbackServer(app) as server:
        async with WixMediaClient(server.url, auth) as wix:
            yield wix


async def _upload(
    wix: WixMediaClient, tmp_path: Path, name: str, data: bytes, mime: str, **kw: object
) -> m.FileDescriptor:
    url = await wix.generate_upload_url(msg.GenerateFileUploadUrlRequest(mime_type=mime, file_name=name, **kw))
    source = tmp_path / f"src-{hashlib.md5(data).hexdigest()}"
    source.write_bytes(data)
    return await wix.upload(url, source, mime_type=mime, file_name=name)


async def test_files_round_trip(client: WixMediaClient, tmp_path: Path) -> None:
    folder = await client.create_folder("Pets")
    assert folder.display_name == "Pets"
    assert folder.parent_folder_id == "media-root"
    assert folder.state == m.State.OK

    progress: list[tuple[int, int | None]] = []
    url = await client.generate_upload_url(
        msg.GenerateFileUploadUrlRequest(mime_type="image/png", file_name="cat.png", parent_folder_id=folder.id,
                                         labels=["pets"], size_in_bytes=len(PNG_16x8))
    )  # fmt: skip
    source = tmp_path / "cat.png"
    source.write_bytes(PNG_16x8)
    cat = await client.upload(
        url, source, mime_type="image/png", progress=lambda done, total: progress.append((done, total))
    )
    assert progress[-1] == (len(PNG_16x8), len(PNG_16x8))
    assert cat.display_name == "cat.png"
    assert cat.parent_folder_id == folder.id
    assert cat.size_in_bytes == len(PNG_16x8)
    assert cat.hash == hashlib.md5(PNG_16x8).hexdigest()
    assert cat.media_type == m.MediaType.IMAGE
    assert cat.media is not None and cat.media.image is not None
    assert (cat.media.image.image.width, cat.media.image.image.height) == (16, 8)
    assert cat.labels == ["pets"]
    assert cat.private is False
    assert cat.operation_status == m.OperationStatus.READY

    assert await client.get_file(cat.id) == cat
    assert await client.get_file(f"wix:image://v1/{cat.id}/cat.png#originWidth=16&originHeight=8") == cat
    assert await client.get_files([cat.id]) == [cat]

    moved = await client.update_file(msg.FileUpdate(id=cat.id, display_name="kitty.png", parent_folder_id="media-root"))
    assert (moved.display_name, moved.parent_folder_id, moved.labels) == ("kitty.png", "media-root", ["pets"])
    relabelled = await client.update_file(msg.FileUpdate(id=cat.id, labels=[]))
    assert relabelled.labels == []
    assert relabelled.display_name == "kitty.png"

    listed = await client.list_files(
        msg.ListFilesRequest(media_types=["IMAGE"], sort=m.Sorting(field_name="displayName"))
    )
    assert [f.id for f in listed.files] == [cat.id]
    assert listed.next_cursor.has_next is False
    found = await client.search_files(msg.SearchFilesRequest(search="kitty", root_folder=m.RootFolder.MEDIA_ROOT))
    assert [f.id for f in found.files] == [cat.id]

    links = await client.generate_file_download_url(
        msg.GenerateFileDownloadUrlRequest(file_id=cat.id, expiration_in_minutes=5, download_file_name="x.png")
    )
    assert [link.asset_key for link in links] == ["src"]
    target = tmp_path / "out" / "cat.png"
    target.parent.mkdir()
    assert await client.download(links[0].url, target) == len(PNG_16x8)
    assert target.read_bytes() == PNG_16x8
    assert list(target.parent.iterdir()) == [target]

    zip_url = await client.generate_files_download_url([cat.id])
    zipped = tmp_path / "files.zip"
    await client.download(zip_url, zipped)
    with zipfile.ZipFile(zipped) as archive:
        assert archive.read("kitty.png") == PNG_16x8

    await client.bulk_delete_files([cat.id])
    trashed = await client.list_deleted_files()
    assert [(f.id, f.parent_folder_id, f.state) for f in trashed.files] == [(cat.id, "trash-root", m.State.DELETED)]
    await client.bulk_restore_files([cat.id])
    assert (await client.get_file(cat.id)).state == m.State.OK
    await client.bulk_delete_files([cat.id], permanent=True)
    with pytest.raises(errors.NotFound) as missing:
        await client.get_file(cat.id)
    assert missing.value.code == "RESOURCE_NOT_FOUND"
    assert missing.value.status == 400


async def test_folders_round_trip(client: WixMediaClient, tmp_path: Path) -> None:
    outer = await client.create_folder("outer")
    inner = await client.create_folder("inner", outer.id)
    assert await client.get_folder(inner.id) == inner
    assert (await client.get_folder("media-root")).id == "media-root"
    renamed = await client.update_folder(msg.FolderUpdate(id=inner.id, display_name="renamed"))
    assert (renamed.display_name, renamed.parent_folder_id) == ("renamed", outer.id)
    moved = await client.update_folder(msg.FolderUpdate(id=inner.id, parent_folder_id="media-root"))
    assert moved.parent_folder_id == "media-root"
    await client.update_folder(msg.FolderUpdate(id=inner.id, parent_folder_id=outer.id))

    top = await client.list_folders()
    assert [f.id for f in top.folders] == [outer.id]
    children = await client.list_folders(msg.ListFoldersRequest(parent_folder_id=outer.id))
    assert [f.id for f in children.folders] == [inner.id]
    searched = await client.search_folders(msg.SearchFoldersRequest(search="renamed"))
    assert [f.id for f in searched.folders] == [inner.id]

    await _upload(client, tmp_path, "a.txt", b"alpha", "text/plain", parent_folder_id=inner.id)
    archive_url = await client.generate_folder_download_url(outer.id)
    body = (await client.http.get(archive_url)).content
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.namelist() == ["renamed/a.txt"]

    await client.bulk_delete_folders([outer.id])
    deleted = await client.list_deleted_folders()
    assert [f.id for f in deleted.folders] == [outer.id]
    assert (await client.search_files()).files == []
    await client.bulk_restore_folders([outer.id])
    assert [f.display_name for f in (await client.search_files()).files] == ["a.txt"]
    await client.bulk_delete_folders([outer.id], permanent=True)
    with pytest.raises(errors.NotFound):
        await client.get_folder(outer.id)


async def test_paging_helpers_walk_lazily_up_to_a_bound(client: WixMediaClient, tmp_path: Path) -> None:
    for i in range(7):
        await client.create_folder(f"folder {i}")
        await _upload(client, tmp_path, f"file-{i}.txt", f"content {i}".encode(), "text/plain")
    request = msg.SearchFilesRequest(paging=m.CursorPaging(limit=2))
    every = [f.id async for f in client.iter_files(request)]
    assert len(every) == len(set(every)) == 7
    some = [f.id async for f in client.iter_files(request, max_items=3)]
    assert some == every[:3]
    folders = [
        f.display_name async for f in client.iter_folders(msg.SearchFoldersRequest(paging=m.CursorPaging(limit=3)))
    ]
    assert sorted(folders) == [f"folder {i}" for i in range(7)]


async def test_resumable_upload_through_the_adapter(client: WixMediaClient, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4099  # ~1 MiB, not a multiple of the chunk size
    source = tmp_path / "clip.bin"
    source.write_bytes(data)
    minted = await client.generate_resumable_upload_url(
        msg.GenerateFileResumableUploadUrlRequest(mime_type="application/octet-stream", file_name="clip.bin",
                                                  size_in_bytes=len(data))
    )  # fmt: skip
    seen: list[int] = []
    file = await client.upload_resumable(
        minted, source, mime_type="application/octet-stream", file_name="clip.bin", chunk_size=300_000,
        progress=lambda done, total: seen.append(done),
    )  # fmt: skip
    assert seen == [300_000, 600_000, 900_000, len(data)]
    assert file.size_in_bytes == len(data)
    assert file.hash == hashlib.md5(data).hexdigest()


async def test_errors_come_back_typed(client: WixMediaClient, clock: FakeClock) -> None:
    with pytest.raises(errors.NotFound):
        await client.get_files(["nope"])
    with pytest.raises(errors.InvalidRequest) as bad_sort:
        await client.search_files(msg.SearchFilesRequest(sort=m.Sorting(field_name="hash")))
    assert bad_sort.value.code == "UNSUPPORTED_SORT_VALUE"
    with pytest.raises(errors.InvalidRequest) as bad_type:
        await client.list_files(msg.ListFilesRequest(media_types=["OTHER"]))
    assert bad_type.value.code == "UNSUPPORTED_MEDIA_TYPE"
    with pytest.raises(errors.InvalidRequest) as bad_mime:
        await client.generate_upload_url(msg.GenerateFileUploadUrlRequest(mime_type="nonsense"))
    assert bad_mime.value.code == "UNSUPPORTED_FILE_FORMAT"
    folder = await client.create_folder("f")
    with pytest.raises(errors.Conflict) as cycle:
        await client.update_folder(msg.FolderUpdate(id=folder.id, parent_folder_id=folder.id))
    assert cycle.value.code == "FOLDER_CYCLE"


async def test_a_wrong_key_is_permission_denied_without_leaking_it(library: Library) -> None:
    secret = "not-the-right-key-0123456789"
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(library)))
    async with WixMediaClient("http://library.test", ApiKeyAuth(SecretStr(secret), "site"), http=http) as wix:
        with pytest.raises(errors.PermissionDenied) as denied:
            await wix.search_files()
        assert denied.value.status == 401
        assert secret not in str(denied.value)
        assert secret not in repr(wix)
    await http.aclose()
