"""Trash and restore through the SDK client, in both protocol eras: exact undo, counts, scope roots, stale origins,
answers that reveal nothing outside, partial failures, names bound by the confirmation, and the walk's bound.

- The undo a done answer offers puts everything back where it was, whatever was asked together, and a restore
  brings folders back before what they held, whatever the order of the ids given.
- Asked folders that nest are counted once; each line says what that folder holds.
- A root of the folder scope is never trashed from inside it, not even inside another folder.
- Under a scope, a remembered origin restores only the item this server trashed, unchanged since.
- Under a scope an outside item is answered exactly as an id that names nothing.
- A failure halfway is reported per item, with the undo of what did move, and audited as it happened.
- A rename between the preview and the approval means nothing is done and a fresh preview comes back.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult
from pydantic import SecretStr

from media_mcp.guard import StaticBackend
from media_mcp.guard.base import MAX_WALK_ITEMS
from media_mcp.library.app import create_app
from media_mcp.library.catalog import Catalog
from media_mcp.library.db import Database
from media_mcp.library.rows import FileRow
from media_mcp.library.service import Library
from media_mcp.server.app import create_server
from media_mcp.settings import ServerSettings
from media_mcp.wix import messages as msg
from media_mcp.wix.auth import ApiKeyAuth
from media_mcp.wix.client import WixMediaClient
from tests.conftest import FakeClock, PNG_16x8
from tests.server.conftest import MakeServer, audit_lines
from tests.server.test_guardrails import bounded, data, put, refusal, text_of, trashed, wix

__all__ = ["wix"]  # the fixture with an offline import source, shared with the guardrail tests

pytestmark = pytest.mark.anyio

SIZE = len(PNG_16x8)


def audit(server_dir: Path, tool: str = "move_to_trash") -> list[dict[str, Any]]:
    return [e for e in (json.loads(line) for line in audit_lines(server_dir)) if e["tool"] == tool]


def undo_args(done: dict[str, Any]) -> dict[str, Any]:
    undo = done["undo"]
    assert undo["tool"] == "restore_from_trash"
    return {"file_ids": undo["file_ids"], "folder_ids": undo["folder_ids"]}


async def folder_trashed(wix: WixMediaClient, folder_id: str) -> bool:
    folder = await wix.get_folder(folder_id)
    return folder.state.value == "DELETED" or folder.parent_folder_id == "trash-root"


async def parent_of_file(wix: WixMediaClient, file_id: str) -> str | None:
    return (await wix.get_file(file_id)).parent_folder_id


async def parent_of_folder(wix: WixMediaClient, folder_id: str) -> str | None:
    return (await wix.get_folder(folder_id)).parent_folder_id


def masked(result: CallToolResult, ident: str) -> str:
    """An answer, text and structured content, with one id replaced: two answers that differ only by it compare."""
    return (text_of(result) + json.dumps(result.structured_content)).replace(ident, "<id>")


# --- 1. the undo is exact -------------------------------------------------------------------------------


@dataclass
class Nest:
    """``home`` holds ``top``, which holds ``mid``, which holds ``low``; each folder holds some files."""

    home: str
    top: str
    mid: str
    low: str
    top_files: list[str]
    mid_files: list[str]
    low_files: list[str]


@pytest.fixture
async def nest(wix: WixMediaClient, tmp_path: Path) -> Nest:
    home = (await wix.create_folder("home")).id
    top = (await wix.create_folder("top", home)).id
    mid = (await wix.create_folder("mid", top)).id
    low = (await wix.create_folder("low", mid)).id
    return Nest(
        home,
        top,
        mid,
        low,
        top_files=[await put(wix, tmp_path, f"top-{n}.png", folder=top) for n in range(2)],
        mid_files=[await put(wix, tmp_path, f"mid-{n}.png", folder=mid) for n in range(3)],
        low_files=[await put(wix, tmp_path, f"low-{n}.png", folder=low) for n in range(4)],
    )


async def assert_in_place(wix: WixMediaClient, nest: Nest) -> None:
    assert await parent_of_folder(wix, nest.top) == nest.home
    assert await parent_of_folder(wix, nest.mid) == nest.top
    assert await parent_of_folder(wix, nest.low) == nest.mid
    for folder, files in ((nest.top, nest.top_files), (nest.mid, nest.mid_files), (nest.low, nest.low_files)):
        for file_id in files:
            assert not await trashed(wix, file_id)
            assert await parent_of_file(wix, file_id) == folder, file_id
    for folder_id in (nest.top, nest.mid, nest.low):
        assert not await folder_trashed(wix, folder_id)


@pytest.mark.parametrize(
    "asked",
    [
        {"file_ids": ["top_files"], "folder_ids": ["top"]},  # a file and the folder it is in
        {"folder_ids": ["mid", "top"]},  # a folder and its parent, the child first
        {"file_ids": ["low_files"], "folder_ids": ["low", "top", "mid"]},  # everything, in no order
    ],
    ids=["file-and-its-folder", "child-first", "all-mixed"],
)
@bounded
async def test_the_offered_undo_puts_everything_back_where_it_was(
    make_server: MakeServer, mode: str, wix: WixMediaClient, nest: Nest, asked: dict[str, list[str]]
) -> None:
    def ids(name: str) -> list[str]:
        value = getattr(nest, name)
        return value[:1] if isinstance(value, list) else [value]

    args = {key: [i for name in names for i in ids(name)] for key, names in asked.items()}
    async with Client(make_server(confirm="allow"), mode=mode) as client:
        done = data(await client.call_tool("move_to_trash", args))
        assert done["status"] == "done"
        assert undo_args(done) == {"file_ids": [], "folder_ids": [nest.top]}  # the rest went with it
        assert {i["status"] for i in done["items"]} == {"done"}
        assert (done["content"]["files"], done["content"]["folders"]) == (9, 3)
        assert await folder_trashed(wix, nest.top) and await trashed(wix, nest.low_files[0])
        back = data(await client.call_tool("restore_from_trash", undo_args(done)))
        assert back["status"] == "done"
    await assert_in_place(wix, nest)


@pytest.mark.parametrize("scoped", [False, True], ids=["no-scope", "scope"])
@bounded
async def test_a_restore_brings_folders_back_before_what_they_held_in_any_order(
    make_server: MakeServer, mode: str, wix: WixMediaClient, nest: Nest, scoped: bool
) -> None:
    scope = {"allowed_folders": nest.home} if scoped else {}
    async with Client(make_server(confirm="allow", **scope), mode=mode) as client:
        # trashed one by one, the innermost first: each remembers the folder it came from
        for args in (
            {"file_ids": [nest.low_files[0]]},
            {"folder_ids": [nest.low]},
            {"folder_ids": [nest.mid]},
            {"file_ids": [nest.top_files[0]]},
            {"folder_ids": [nest.top]},
        ):
            assert data(await client.call_tool("move_to_trash", args))["status"] == "done", args
        if scoped:  # alone, the file would land at the top, outside the scope: refused, and saying why
            alone = data(await client.call_tool("restore_from_trash", {"file_ids": [nest.low_files[0]]}))
            (item,) = alone["items"]
            assert (alone["status"], item["status"]) == ("nothing_to_do", "refused")
            assert '"low"' in item["note"] and "restore that folder with it" in item["note"]
            assert await trashed(wix, nest.low_files[0])
        asked = {
            "file_ids": [nest.low_files[0], nest.top_files[0]],
            "folder_ids": [nest.low, nest.mid, nest.top],  # children first
        }
        back = data(await client.call_tool("restore_from_trash", asked))
        assert back["status"] == "done", back
        where = {i["id"]: i["folder"]["id"] for i in back["items"]}
        assert where == {
            nest.low_files[0]: nest.low,
            nest.top_files[0]: nest.top,
            nest.low: nest.mid,
            nest.mid: nest.top,
            nest.top: nest.home,
        }
    await assert_in_place(wix, nest)


@bounded
async def test_an_item_taken_along_comes_back_with_its_folder(
    make_server: MakeServer, mode: str, wix: WixMediaClient, nest: Nest
) -> None:
    async with Client(make_server(confirm="allow", allowed_folders=nest.home), mode=mode) as client:
        data(await client.call_tool("move_to_trash", {"folder_ids": [nest.top]}))
        alone = data(await client.call_tool("restore_from_trash", {"file_ids": [nest.mid_files[0]]}))
        assert alone["items"][0]["status"] == "refused" and '"top"' in alone["items"][0]["note"]
        assert await trashed(wix, nest.mid_files[0])
        both = data(
            await client.call_tool(
                "restore_from_trash", {"file_ids": [nest.mid_files[0]], "folder_ids": [nest.mid, nest.top]}
            )
        )
    assert both["status"] == "done", both
    assert {i["id"]: i["folder"]["id"] for i in both["items"]} == {
        nest.mid_files[0]: nest.mid,
        nest.mid: nest.top,
        nest.top: nest.home,
    }
    await assert_in_place(wix, nest)


# --- 2. nested asked folders are counted once -------------------------------------------------------------


@bounded
async def test_asked_folders_that_nest_are_counted_once_and_each_line_says_what_it_holds(
    make_server: MakeServer, mode: str, wix: WixMediaClient, nest: Nest, server_dir: Path
) -> None:
    args: dict[str, Any] = {"folder_ids": [nest.top, nest.mid, nest.low]}
    async with Client(make_server(confirm="token"), mode=mode) as client:
        preview = data(await client.call_tool("move_to_trash", args))
        content = preview["content"]
        assert (content["files"], content["folders"], content["bytes"]) == (9, 3, 9 * SIZE)
        counts = {i["id"]: (i["files"], i["folders"], i["size"]) for i in preview["items"]}
        assert counts == {nest.top: (9, 2, 9 * SIZE), nest.mid: (7, 1, 7 * SIZE), nest.low: (4, 0, 4 * SIZE)}
        notes = {i["id"]: i.get("note") for i in preview["items"]}
        assert notes[nest.top] is None
        for inner in (nest.mid, nest.low):
            assert f'inside folder "top" ({nest.top})' in notes[inner] and "counted with it" in notes[inner]
        text = preview["message"]
        assert "9 file(s) and 3 folder(s) in all" in text
        assert 'folder "mid" with 7 file(s), 1 subfolder(s)' in text and 'folder "low" with 4 file(s)' in text
        done = data(
            await client.call_tool("move_to_trash", {**args, "confirmation_token": preview["confirmation_token"]})
        )
    assert done["status"] == "done"
    assert (done["content"]["files"], done["content"]["folders"]) == (9, 3)
    assert "9 file(s) and 3 folder(s) in all" in done["message"]
    assert [(i["id"], i["status"]) for i in done["items"]] == [(f, "done") for f in args["folder_ids"]]
    (entry,) = [e for e in audit(server_dir) if e["outcome"] == "done"]
    assert (entry["folders"], entry["content_files"], entry["content_folders"]) == ([nest.top], 9, 3)


# --- 3. a root of the scope is never trashed from inside ------------------------------------------------------


@bounded
async def test_a_folder_holding_a_scope_root_is_refused(
    make_server: MakeServer, mode: str, wix: WixMediaClient, tmp_path: Path
) -> None:
    outer = (await wix.create_folder("outer-root")).id
    middle = (await wix.create_folder("middle", outer)).id
    inner = (await wix.create_folder("inner-root", middle)).id
    kept = await put(wix, tmp_path, "kept.png", folder=inner)
    spare = (await wix.create_folder("spare", outer)).id
    scope = f"{outer},{inner}"
    async with Client(make_server(confirm="allow", allowed_folders=scope), mode=mode) as client:
        answer = data(await client.call_tool("move_to_trash", {"folder_ids": [middle]}))
        assert answer["status"] == "nothing_to_do"
        (item,) = answer["items"]
        assert item["status"] == "refused" and '"inner-root"' in item["note"] and "root" in item["note"]
        mixed = data(await client.call_tool("move_to_trash", {"folder_ids": [middle, spare]}))
    assert [(i["id"], i["status"]) for i in mixed["items"]] == [(middle, "refused"), (spare, "done")]
    assert (mixed["content"]["folders"], mixed["content"]["files"]) == (1, 0)
    assert not await folder_trashed(wix, middle) and not await folder_trashed(wix, inner)
    assert not await trashed(wix, kept)
    assert await folder_trashed(wix, spare)


# --- 4. a stale origin restores nothing -------------------------------------------------------------------------


@pytest.mark.parametrize("rename", [True, False], ids=["renamed-and-moved", "moved"])
@bounded
async def test_an_origin_made_stale_elsewhere_restores_nothing(
    make_server: MakeServer,
    mode: str,
    wix: WixMediaClient,
    tmp_path: Path,
    clock: FakeClock,
    rename: bool,
) -> None:
    inside = (await wix.create_folder("inside")).id
    outside = (await wix.create_folder("outside")).id
    report = await put(wix, tmp_path, "report.png", folder=inside)
    control = await put(wix, tmp_path, "control.png", folder=inside)
    async with (
        Client(make_server(confirm="allow", allowed_folders=inside), mode=mode) as scoped,
        Client(make_server(confirm="allow"), mode=mode) as open_server,
    ):
        data(await scoped.call_tool("move_to_trash", {"file_ids": [report, control]}))
        seen = data(await open_server.call_tool("get_file", {"file_id": report}))["files"][0]
        assert seen["trashed_from"]["id"] == inside  # the server's own record, while it still holds
        # the dashboard: restored, (renamed,) moved out and trashed again, a little later each time
        for step in range(3):
            clock.advance(60)
            if step == 0:
                await wix.bulk_restore_files([report])
            elif step == 1:
                name = "renamed.png" if rename else None
                await wix.update_file(msg.FileUpdate(id=report, display_name=name, parent_folder_id=outside))
            else:
                await wix.bulk_delete_files([report])
        stale = await scoped.call_tool("restore_from_trash", {"file_ids": [report]})
        missing = await scoped.call_tool("restore_from_trash", {"file_ids": ["no-such-file"]})
        assert masked(stale, report) == masked(missing, "no-such-file")
        assert await trashed(wix, report)
        seen = data(await open_server.call_tool("get_file", {"file_id": report}))["files"][0]
        assert "trashed_from" not in seen  # the record no longer says where it came from
        mine = data(await scoped.call_tool("restore_from_trash", {"file_ids": [control]}))  # the control still works
        assert mine["items"][0]["status"] == "done" and mine["items"][0]["folder"]["id"] == inside
    await wix.bulk_restore_files([report])
    assert await parent_of_file(wix, report) == outside


@bounded
async def test_the_names_said_to_be_inside_the_folders_are_what_the_folders_hold(
    make_server: MakeServer, mode: str, wix: WixMediaClient, tmp_path: Path
) -> None:
    box = (await wix.create_folder("box")).id
    loose = [await put(wix, tmp_path, f"loose-{n:02}.png") for n in range(25)]  # more than the names shown
    await put(wix, tmp_path, "in-box.png", folder=box)
    async with Client(make_server(confirm="token"), mode=mode) as client:
        preview = data(await client.call_tool("move_to_trash", {"file_ids": loose, "folder_ids": [box]}))
    (line,) = [x for x in preview["message"].splitlines() if x.startswith("Inside the folders")]
    assert line == 'Inside the folders: "in-box.png"', line  # each loose file has a line of its own
    assert preview["content"]["files"] == 26


@pytest.mark.parametrize("then", ["outer-folder-trashed", "root-deleted-for-good", "root-trashed"])
@bounded
async def test_a_restore_under_a_scope_needs_the_way_back_to_end_in_a_live_scope_folder(
    make_server: MakeServer, mode: str, wix: WixMediaClient, tmp_path: Path, clock: FakeClock, then: str
) -> None:
    """What happened above the scope's folder after the trash: the restore neither names what lies there nor puts the
    file anywhere but back inside; it answers as for a missing id."""
    outer = (await wix.create_folder("SECRET-outer")).id
    home = (await wix.create_folder("home", outer)).id
    x = await put(wix, tmp_path, "x.png", folder=home)
    async with Client(make_server(allowed_folders=home, confirm="allow"), mode=mode) as client:
        assert data(await client.call_tool("move_to_trash", {"file_ids": [x]}))["status"] == "done"
        clock.advance(60)
        if then == "outer-folder-trashed":  # elsewhere: the folder above the scope's, with the scope's inside it
            await wix.bulk_delete_folders([outer])
        else:
            await wix.bulk_delete_folders([home], permanent=then == "root-deleted-for-good")
        answer = await client.call_tool("restore_from_trash", {"file_ids": [x]})
        missing = await client.call_tool("restore_from_trash", {"file_ids": ["no-such-file"]})
    assert masked(answer, x) == masked(missing, "no-such-file")
    assert "SECRET" not in text_of(answer) and outer not in text_of(answer)
    assert await trashed(wix, x)


@bounded
async def test_an_origin_kept_before_fingerprints_proves_nothing(
    make_server: MakeServer, mode: str, wix: WixMediaClient, tmp_path: Path, server_dir: Path
) -> None:
    inside = (await wix.create_folder("inside")).id
    old = await put(wix, tmp_path, "old.png", folder=inside)
    await wix.bulk_delete_files([old])
    conn = sqlite3.connect(server_dir / "guard.sqlite3")  # the store as an earlier version left it
    try:
        conn.execute(
            "CREATE TABLE trash_origins (item_id TEXT PRIMARY KEY, kind TEXT NOT NULL, origin TEXT NOT NULL,"
            " trashed_at REAL NOT NULL)"
        )
        conn.execute("INSERT INTO trash_origins VALUES (?, 'file', ?, 0)", (old, inside))
        conn.commit()
    finally:
        conn.close()
    fresh = await put(wix, tmp_path, "fresh.png", folder=inside)
    async with Client(make_server(confirm="allow", allowed_folders=inside), mode=mode) as client:
        unproven = data(await client.call_tool("restore_from_trash", {"file_ids": [old]}))
        assert unproven["items"] == [{"id": old, "kind": "file", "status": "not_found"}]
        data(await client.call_tool("move_to_trash", {"file_ids": [fresh]}))
        proven = data(await client.call_tool("restore_from_trash", {"file_ids": [fresh]}))
        assert proven["items"][0]["status"] == "done"
    assert await trashed(wix, old) and not await trashed(wix, fresh)


@pytest.mark.parametrize("outside_trashed", [True, False], ids=["outside-in-trash", "outside-live"])
@bounded
async def test_an_unproven_origin_never_names_a_folder_outside(
    make_server: MakeServer, mode: str, wix: WixMediaClient, tmp_path: Path, server_dir: Path, outside_trashed: bool
) -> None:
    """A record kept before fingerprints, pointing outside: a file inside a scope folder trashed elsewhere shows no
    origin at all, rather than naming (or failing on) the outside folder."""
    home = (await wix.create_folder("home")).id
    secret = (await wix.create_folder("SECRET-Q")).id
    x = await put(wix, tmp_path, "x.png", folder=home)
    conn = sqlite3.connect(server_dir / "guard.sqlite3")
    try:
        conn.execute(
            "CREATE TABLE trash_origins (item_id TEXT PRIMARY KEY, kind TEXT NOT NULL, origin TEXT NOT NULL,"
            " trashed_at REAL NOT NULL)"
        )
        conn.execute("INSERT INTO trash_origins VALUES (?, 'file', ?, 0)", (x, secret))
        conn.commit()
    finally:
        conn.close()
    await wix.bulk_delete_folders([home])  # elsewhere: the scope's own folder goes to the trash, with the file
    if outside_trashed:
        await wix.bulk_delete_folders([secret])
    async with Client(make_server(allowed_folders=home), mode=mode) as client:
        answer = await client.call_tool("get_file", {"file_id": x})
    assert not answer.is_error, text_of(answer)
    assert "SECRET" not in text_of(answer) and secret not in text_of(answer)
    assert "trashed_from" not in data(answer)["files"][0]


# --- 5. outside items are answered as missing ones ------------------------------------------------------------


@bounded
async def test_outside_items_are_answered_exactly_as_missing_ones(
    make_server: MakeServer, mode: str, wix: WixMediaClient, tmp_path: Path
) -> None:
    inside = (await wix.create_folder("inside")).id
    outside = (await wix.create_folder("outside")).id
    binned_folder = (await wix.create_folder("binned", outside)).id
    out_file = await put(wix, tmp_path, "out.png", folder=outside)
    out_binned = await put(wix, tmp_path, "out-binned.png", folder=outside)
    in_elsewhere = await put(wix, tmp_path, "in-elsewhere.png", folder=inside)
    await wix.bulk_delete_files([out_binned, in_elsewhere])  # trashed elsewhere, not by this server
    await wix.bulk_delete_folders([binned_folder])
    async with Client(make_server(confirm="token", allowed_folders=inside), mode=mode) as client:
        for tool in ("restore_from_trash", "move_to_trash"):
            for kind, ident in (
                ("file_ids", out_file),
                ("file_ids", out_binned),
                ("file_ids", in_elsewhere),
                ("folder_ids", outside),
                ("folder_ids", binned_folder),
            ):
                seen = await client.call_tool(tool, {kind: [ident]})
                none = await client.call_tool(tool, {kind: ["0123456789abcdef0123456789abcdef"]})
                assert masked(seen, ident) == masked(none, "0123456789abcdef0123456789abcdef"), (tool, ident)
                assert data(seen)["items"][0]["status"] == "not_found"
    assert not await trashed(wix, out_file) and await trashed(wix, out_binned)


# --- 6. a failure halfway is reported per item -------------------------------------------------------------


class Faulty(httpx.AsyncBaseTransport):
    """The library, except for the bulk calls named: refused (400), or answered without being done."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, refuse: AbstractSet[str], swallow: AbstractSet[str] = frozenset()
    ) -> None:
        self.inner = inner
        self.refuse = refuse
        self.swallow = swallow

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/site-media/v1")
        if path in self.refuse:
            body = {"message": "refused", "details": {"applicationError": {"code": "BULK_REFUSED",
                                                                          "description": "not today"}}}  # fmt: skip
            return httpx.Response(400, json=body)
        if path in self.swallow:
            return httpx.Response(200, json={})
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def faulty_server(library: Library, server_dir: Path, clock: FakeClock) -> AsyncIterator[Any]:
    """``faulty_server(refuse={...}, swallow={...})``: a server on the library with some bulk calls failing."""
    clients: list[httpx.AsyncClient] = []

    def build(refuse: AbstractSet[str], swallow: AbstractSet[str] = frozenset(), **overrides: Any) -> MCPServer:
        http = httpx.AsyncClient(transport=Faulty(httpx.ASGITransport(app=create_app(library)), refuse, swallow))
        clients.append(http)
        adapter = WixMediaClient("http://library.test", ApiKeyAuth(SecretStr(library.api_key), library.site_id),
                                 http=http)  # fmt: skip
        return create_server(ServerSettings(confirm="allow", **overrides), StaticBackend(adapter, "local"),
                             data_dir=server_dir, clock=clock)  # fmt: skip

    yield build
    for http in clients:
        await http.aclose()


@bounded
async def test_a_failure_halfway_reports_what_moved_with_its_undo(
    faulty_server: Any, mode: str, wix: WixMediaClient, tmp_path: Path, server_dir: Path
) -> None:
    loose = await put(wix, tmp_path, "loose.png")
    folder = (await wix.create_folder("G")).id
    held = await put(wix, tmp_path, "held.png", folder=folder)
    async with Client(faulty_server({"/bulk/folders/delete"}), mode=mode) as client:
        answer = data(await client.call_tool("move_to_trash", {"file_ids": [loose], "folder_ids": [folder]}))
        assert answer["status"] == "partly_done"
        assert [(i["id"], i["status"]) for i in answer["items"]] == [(loose, "done"), (folder, "failed")]
        assert "not today" in answer["items"][1]["note"]
        assert undo_args(answer) == {"file_ids": [loose], "folder_ids": []}
        assert (answer["content"]["files"], answer["content"]["folders"]) == (1, 0)  # only what moved
        assert "Not moved: folder" in answer["message"] and "restore_from_trash(file_ids=" in answer["message"]
        assert await trashed(wix, loose) and not await folder_trashed(wix, folder) and not await trashed(wix, held)
        (entry,) = audit(server_dir)
        assert (entry["outcome"], entry["files"], entry["failed"]) == ("partly_done", [loose], [folder])
        assert "folders" not in entry
        # when nothing moves, the call fails as a whole, and says so in the audit
        assert "not today" in refusal(await client.call_tool("move_to_trash", {"folder_ids": [folder]}))
        assert audit(server_dir)[-1]["outcome"] == "failed"
        back = data(await client.call_tool("restore_from_trash", undo_args(answer)))
        assert back["status"] == "done"
    assert not await trashed(wix, loose)


@bounded
async def test_a_move_the_media_service_does_not_show_is_not_claimed(
    faulty_server: Any, mode: str, wix: WixMediaClient, tmp_path: Path, server_dir: Path
) -> None:
    lost = await put(wix, tmp_path, "lost.png")
    folder = (await wix.create_folder("F")).id
    await put(wix, tmp_path, "inside.png", folder=folder)
    async with Client(faulty_server(set(), swallow={"/bulk/files/delete"}), mode=mode) as client:
        answer = data(await client.call_tool("move_to_trash", {"file_ids": [lost], "folder_ids": [folder]}))
    assert answer["status"] == "partly_done"
    assert [(i["id"], i["status"]) for i in answer["items"]] == [(lost, "unconfirmed"), (folder, "done")]
    assert (answer["content"]["files"], answer["content"]["folders"]) == (1, 1)  # the folder's file, not lost.png
    assert undo_args(answer) == {"file_ids": [], "folder_ids": [folder]}
    assert "Sent, but not confirmed" in answer["message"]
    assert not await trashed(wix, lost)
    (entry,) = audit(server_dir)
    assert (entry["outcome"], entry["unconfirmed"], entry["folders"]) == ("partly_done", [lost], [folder])


# --- 7. what the person was shown is what the approval covers --------------------------------------------------


@pytest.mark.parametrize("what", ["asked-file", "file-inside", "folder-inside", "asked-folder"])
@bounded
async def test_a_rename_after_the_preview_does_nothing_and_previews_afresh(
    make_server: MakeServer, mode: str, wix: WixMediaClient, nest: Nest, what: str
) -> None:
    args: dict[str, Any] = {"file_ids": [nest.top_files[0]]} if what == "asked-file" else {"folder_ids": [nest.top]}
    async with Client(make_server(confirm="token"), mode=mode) as client:
        preview = data(await client.call_tool("move_to_trash", args))
        if what == "asked-file":
            await wix.update_file(msg.FileUpdate(id=nest.top_files[0], display_name="renamed.png"))
        elif what == "file-inside":
            await wix.update_file(msg.FileUpdate(id=nest.low_files[0], display_name="renamed.png"))
        elif what == "folder-inside":
            await wix.update_folder(msg.FolderUpdate(id=nest.low, display_name="renamed"))
        else:
            await wix.update_folder(msg.FolderUpdate(id=nest.top, display_name="renamed"))
        again = data(
            await client.call_tool("move_to_trash", {**args, "confirmation_token": preview["confirmation_token"]})
        )
        assert again["status"] == "changed" and "nothing was done" in again["message"]
        assert again["confirmation_token"] != preview["confirmation_token"]
        if what != "folder-inside":  # the preview names files and the asked folders (subfolders are only counted)
            assert "renamed" in again["message"]
        await assert_in_place(wix, nest)
        done = data(
            await client.call_tool("move_to_trash", {**args, "confirmation_token": again["confirmation_token"]})
        )
    assert done["status"] == "done"


# --- 8. the walk is bounded per call ---------------------------------------------------------------------------------


class _OneTransaction(Database):
    """The library's own `Catalog` writing many rows under one commit."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        yield self.conn


@pytest.fixture
async def halves(library: Library, wix: WixMediaClient) -> AsyncIterator[list[str]]:
    """Two folders, each holding just over half of what one call may walk (rows written straight to the catalog)."""
    folders = [(await wix.create_folder(f"half-{n}")).id for n in range(2)]
    per_folder = MAX_WALK_ITEMS // 2 + 1
    with library.db.tx() as conn:
        catalog = Catalog(_OneTransaction(conn))
        for folder in folders:
            for n in range(per_folder):
                catalog.add_file(
                    FileRow(
                        id=f"{library.site_id[:6]}_{secrets.token_hex(16)}~mv2.jpg",
                        display_name=f"f{n}.jpg",
                        parent_id=folder,
                        root="media",
                        state="OK",
                        private=False,
                        media_type="IMAGE",
                        mime_type="image/jpeg",
                        size=10,
                        hash="0" * 32,
                        blob=None,
                        status="READY",
                        created=0.0,
                        updated=0.0,
                    )  # fmt: skip
                )
    yield folders


@bounded
async def test_the_walk_is_bounded_for_the_whole_call(client: Client, halves: list[str]) -> None:
    text = refusal(await client.call_tool("move_to_trash", {"folder_ids": halves}))
    assert f"more than {MAX_WALK_ITEMS} items in all" in text
    one = data(await client.call_tool("move_to_trash", {"folder_ids": halves[:1]}))
    assert one["status"] == "confirmation_required" and one["content"]["files"] == MAX_WALK_ITEMS // 2 + 1


# --- on Wix, a bulk move may show late ------------------------------------------------------------------------


class LateWix:
    """Wix's files as the guard meets them after a bulk move: the move is accepted at once, but reads show the file
    in the trash only from the ``shows_after``-th read that follows it (never, for None)."""

    def __init__(self, shows_after: int | None) -> None:
        self.shows_after = shows_after
        self.reads_since_move: int | None = None

    def file(self) -> dict[str, Any]:
        landed = self.reads_since_move is not None and self.shows_after is not None
        landed = landed and self.reads_since_move >= self.shows_after  # type: ignore[operator]
        return {"id": "site_a.png", "displayName": "a.png", "parentFolderId": "trash-root" if landed else "media-root",
                "mediaType": "IMAGE", "operationStatus": "READY", "sizeInBytes": "10",
                "state": "DELETED" if landed else "OK", "updatedDate": "2027-01-15T08:00:00Z"}  # fmt: skip

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/site-media/v1")
        if path == "/bulk/files/delete":
            self.reads_since_move = 0
            return httpx.Response(200, json={})
        if path in ("/files/get-files", "/files/site_a.png"):
            answer = self.file()
            if self.reads_since_move is not None:
                self.reads_since_move += 1
            return httpx.Response(200, json={"files": [answer]} if path.endswith("get-files") else {"file": answer})
        return httpx.Response(404, json={"message": f"not in this fake: {request.method} {path}"})


@pytest.mark.parametrize(("shows_after", "status", "waits"), [(0, "done", []), (2, "done", [0.5, 1.0]),
                                                              (None, "unconfirmed", [0.5, 1.0, 2.0])])  # fmt: skip
async def test_on_wix_a_move_that_shows_late_is_read_again_within_a_bound(
    tmp_path: Path, shows_after: int | None, status: str, waits: list[float]
) -> None:
    from media_mcp.guard import Guard

    fake = LateWix(shows_after)
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    adapter = WixMediaClient("http://wix.test", ApiKeyAuth(SecretStr("key"), "site"), http=http)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    guard = Guard(ServerSettings(confirm="allow"), StaticBackend(adapter, "wix"), data_dir=tmp_path, sleep=sleep)
    outcome = await guard.trash(["site_a.png"], [])
    await http.aclose()
    (item,) = outcome.items
    assert (item.id, item.status) == ("site_a.png", status), outcome
    assert slept == waits
    if status == "unconfirmed":
        assert outcome.status != "done" and "not show it in the trash yet" in (item.note or ""), outcome
