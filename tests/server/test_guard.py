"""The guard layer through the SDK client, in both protocol eras.

- Under a folder scope, no registered tool returns, links, moves, trashes or restores an outside item: the test
  derives its calls from the registry and each tool's input schema, so a new tool is covered without anyone
  remembering to add it.
- Cursors are sealed: an edited, foreign, expired or re-purposed cursor is refused, never obeyed.
- A confirmation covers exactly what the person saw: a folder's preview counts what it holds, recursively; a change
  between preview and action does nothing and previews afresh; a token works once, across restarts and processes.
- Trash and restore answer per item, truthfully.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client, MCPError
from mcp.client.session import ClientRequestContext
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult, Tool
from pydantic import SecretStr

from media_mcp.guard import StaticBackend
from media_mcp.guard.call import FOLDER_NAME_SECONDS
from media_mcp.server.app import create_server
from media_mcp.settings import ServerSettings
from media_mcp.wix import messages as msg
from media_mcp.wix.auth import ApiKeyAuth
from media_mcp.wix.client import WixMediaClient
from tests.conftest import FakeClock, PNG_16x8
from tests.server.conftest import MakeServer, ShowsApps, audit_lines
from tests.server.test_guardrails import IMPORT_SOURCE, bounded, data, put, refusal, text_of, trashed, wix

__all__ = ["wix"]  # the fixture with an offline import source, shared with the guardrail tests

pytestmark = pytest.mark.anyio


# --- a site with an inside and an outside ------------------------------------------------------------


@dataclass
class Site:
    inside: str
    nested: str
    in_file: str
    nested_file: str
    outside: str
    out_file: str
    out_private: str
    top_file: str
    trashed_out: str
    outside_ids: set[str] = field(default_factory=set)
    outside_names: set[str] = field(default_factory=set)


@pytest.fixture
async def site(wix: WixMediaClient, tmp_path: Path) -> Site:
    above = (await wix.create_folder("OUTSIDE-above")).id  # the scope's root sits inside an outside folder
    inside = (await wix.create_folder("inside-folder", above)).id
    nested = (await wix.create_folder("nested-folder", inside)).id
    outside = (await wix.create_folder("OUTSIDE-folder")).id
    deeper = (await wix.create_folder("OUTSIDE-deeper", outside)).id
    s = Site(
        inside=inside,
        nested=nested,
        in_file=await put(wix, tmp_path, "inside-a.png", folder=inside),
        nested_file=await put(wix, tmp_path, "inside-b.png", folder=nested),
        outside=outside,
        out_file=await put(wix, tmp_path, "OUTSIDE-public.png", folder=outside),
        out_private=await put(wix, tmp_path, "OUTSIDE-private.png", folder=deeper, private=True),
        top_file=await put(wix, tmp_path, "OUTSIDE-top.png"),
        trashed_out=await put(wix, tmp_path, "OUTSIDE-trashed.png", folder=outside),
    )
    await wix.bulk_delete_files([s.trashed_out])
    s.outside_ids = {above, outside, deeper, s.out_file, s.out_private, s.top_file, s.trashed_out}
    s.outside_names = {"OUTSIDE"}  # every outside name carries it
    return s


async def snapshot(wix: WixMediaClient, site: Site) -> dict[str, Any]:
    """Everything about the outside items a tool could change."""
    state: dict[str, Any] = {}
    for file_id in (site.out_file, site.out_private, site.top_file, site.trashed_out):
        f = await wix.get_file(file_id)
        state[file_id] = (f.display_name, f.parent_folder_id, f.state, f.labels, f.private)
    for folder_id in site.outside_ids - set(state):
        d = await wix.get_folder(folder_id)
        state[folder_id] = (d.display_name, d.parent_folder_id, d.state)
    state["top-level folders"] = sorted(
        f.id for f in (await wix.list_folders(msg.ListFoldersRequest(parent_folder_id="media-root"))).folders
    )
    state["top-level files"] = sorted(
        f.id for f in (await wix.list_files(msg.ListFilesRequest(parent_folder_id="media-root"))).files
    )
    return state


def leaks(result: CallToolResult, site: Site, given: Sequence[str] = ()) -> list[str]:
    """Outside ids or names anywhere in an answer (its text and structured content), beyond the ids it was given."""
    blob = _masked(text_of(result) + json.dumps(result.structured_content or {}), given)
    return [token for token in site.outside_ids | site.outside_names if token in blob]


def _masked(text: str, ids: Sequence[str]) -> str:
    for ident in ids:
        text = text.replace(ident, "<id>")
    return text


# --- every registered tool, driven from its schema -----------------------------------------------------

SAMPLES: dict[str, Any] = {
    "file_name": "fresh.png",
    "mime_type": "image/png",
    "name": "renamed.png",
    "url": IMPORT_SOURCE,
    "path": "fresh.png",
}
"""Values for the required arguments that are not ids. A new tool with another required argument fails the test
below until a sample is added here: the test never silently skips a tool."""
EFFECTS: dict[str, dict[str, Any]] = {
    "update_file": {"add_labels": ["moved-by-test"]},
    "update_folder": {"name": "renamed-by-test"},
}
"""Optional arguments that give a call something to do, where it would otherwise only be refused for doing nothing."""


def id_arguments(tool: Tool, site: Site, *, inside: bool = False) -> list[tuple[str, Any]]:
    """Each id-carrying argument of a tool, filled with outside ids of the right kind (``inside``: inside ones)."""
    out: list[tuple[str, Any]] = []
    for name, schema in tool.input_schema.get("properties", {}).items():
        folders = [site.outside, "media-root", "trash-root"] if not inside else [site.inside, site.nested]
        files = [site.out_file, site.out_private, site.top_file, site.trashed_out]
        if inside:
            files = [site.in_file, site.nested_file]
        if name.endswith("folder_ids"):
            out.append((name, folders[:1]))
        elif name.endswith("file_ids"):
            out.append((name, files))
        elif name.endswith("folder_id"):
            out += [(name, folder) for folder in folders]
        elif name.endswith("file_id"):
            out += [(name, file) for file in files]
        elif name == "root" and not inside:
            out += [(name, "TRASH_ROOT"), (name, "VISITOR_UPLOADS_ROOT")]
        assert name != "cursor" or schema.get("maxLength"), "cursors are bounded"
    return out


def base_arguments(tool: Tool, site: Site) -> dict[str, Any]:
    """The tool's required arguments, ids among them pointing inside the scope, and what gives it an effect."""
    args: dict[str, Any] = dict(EFFECTS.get(tool.name, {}))
    for name in tool.input_schema.get("required", []):
        if name.endswith("folder_id"):
            args[name] = site.nested
            continue
        if name.endswith("file_id"):
            args[name] = site.in_file
            continue
        if name.endswith("file_ids"):
            args[name] = [site.in_file]
            continue
        assert name in SAMPLES, f"add a sample value for {tool.name}.{name} to SAMPLES"
        args[name] = SAMPLES[name]
    return args


@pytest.fixture
async def scoped(make_server: MakeServer, mode: str, site: Site, upload_root: Path) -> AsyncIterator[Client]:
    (upload_root / "fresh.png").write_bytes(PNG_16x8)
    # "allow": a destructive call acts at once, so a scope hole would show as damage, not as a preview
    server = make_server(allowed_folders=site.inside, confirm="allow", allow_permanent_delete=True)
    async with Client(server, mode=mode, extensions=[ShowsApps()]) as client:  # the app-only tools too
        yield client


@bounded
async def test_no_tool_reaches_outside_the_scope(
    scoped: Client, wix: WixMediaClient, site: Site, server_dir: Path
) -> None:
    tools = (await scoped.list_tools()).tools
    assert len(tools) >= 12
    before = await snapshot(wix, site)
    driven = 0
    for tool in tools:
        for name, value in id_arguments(tool, site):
            args = base_arguments(tool, site) | {name: value}
            if tool.name == "move_to_trash":
                args["permanent"] = True  # the worst case: nothing outside may go, for good or not
            result = await scoped.call_tool(tool.name, args)
            driven += 1
            given = [value] if isinstance(value, str) else list(value)
            assert leaks(result, site, given) == [], (tool.name, args, text_of(result))
            if result.is_error and set(given) <= site.outside_ids:  # refused as ids that exist nowhere are
                unknown = [f"no-such-{n}" for n in range(len(given))]
                twin = await scoped.call_tool(
                    tool.name, args | {name: unknown[0] if isinstance(value, str) else unknown}
                )
                assert twin.is_error, (tool.name, args)
                assert _masked(text_of(result), given) == _masked(text_of(twin), unknown), (tool.name, args)
            if not result.is_error:  # trash and restore answer per item: every outside one is "not found"
                items = (result.structured_content or {}).get("items", [])
                assert all(i["status"] in ("not_found", "refused") for i in items), (tool.name, items)
    assert driven >= 30
    assert await snapshot(wix, site) == before
    for line in audit_lines(server_dir):
        assert not [i for i in site.outside_ids if i in line], line
    for uri in (f"media://files/{site.out_file}", f"media://folders/{site.outside}"):
        with pytest.raises(MCPError, match="not found"):
            await scoped.read_resource(uri)


@bounded
async def test_no_answer_about_inside_items_names_anything_outside(
    scoped: Client, wix: WixMediaClient, site: Site
) -> None:
    """Answers name the folders around an item (its parent, its path): none of them may lie outside, not even the
    folder that holds the scope's root. Mixed with a missing id, an outside one reads as missing too."""
    driven = 0
    for tool in (await scoped.list_tools()).tools:
        for name, value in id_arguments(tool, site, inside=True) + [(None, None)]:
            args = base_arguments(tool, site) | ({name: value} if name else {})
            result = await scoped.call_tool(tool.name, args)
            driven += 1
            assert leaks(result, site) == [], (tool.name, args, text_of(result))
        for name, value in id_arguments(tool, site):
            if not isinstance(value, list):
                continue
            missing = await scoped.call_tool(tool.name, base_arguments(tool, site) | {name: ["no-such-y", "no-such-x"]})
            for outside in value:
                mixed = await scoped.call_tool(tool.name, base_arguments(tool, site) | {name: [outside, "no-such-x"]})
                assert _masked(text_of(mixed), [outside]) == _masked(text_of(missing), ["no-such-y"]), (tool, outside)
    assert driven >= 20
    for uri in (f"media://folders/{site.inside}", f"media://folders/{site.nested}", f"media://files/{site.in_file}"):
        blob = str(await scoped.read_resource(uri))
        assert not [token for token in site.outside_ids | site.outside_names if token in blob], uri


@bounded
async def test_pages_under_a_scope_hold_only_inside_items(scoped: Client, wix: WixMediaClient, site: Site) -> None:
    for n in range(5):  # more outside files than a page, so the guard must read on past them
        await wix.create_folder(f"OUTSIDE-extra-{n}")
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        page = data(await scoped.call_tool("search_files", {"limit": 1} | ({"cursor": cursor} if cursor else {})))
        seen += [row[0] for row in page["rows"]]
        assert not set(seen) & site.outside_ids
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert sorted(seen) == sorted({site.in_file, site.nested_file})
    folders: list[str] = []
    cursor = None
    for _ in range(20):
        page = data(await scoped.call_tool("search_folders", {"limit": 1} | ({"cursor": cursor} if cursor else {})))
        folders += [f["id"] for f in page["folders"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert sorted(folders) == sorted({site.inside, site.nested})


async def test_a_folder_moved_out_of_the_scope_is_gone_at_once(scoped: Client, wix: WixMediaClient, site: Site) -> None:
    before = data(await scoped.call_tool("search_files", {}))
    assert site.nested_file in [row[0] for row in before["rows"]]
    await wix.update_folder(msg.FolderUpdate(id=site.nested, parent_folder_id=site.outside))  # not through the server
    after = data(await scoped.call_tool("search_files", {}))
    assert [row[0] for row in after["rows"]] == [site.in_file]
    assert refusal(await scoped.call_tool("get_file", {"file_id": site.nested_file}))


async def test_servers_in_one_process_each_answer_through_their_own_guard(
    make_server: MakeServer, mode: str, site: Site
) -> None:
    # the SDK's tools are built once per process and shared; each call must still reach its own server's guard
    whole, scoped_server = make_server(max_batch_items=7), make_server(allowed_folders=site.inside, max_batch_items=3)
    async with Client(whole, mode=mode) as a, Client(scoped_server, mode=mode) as b:
        for _ in range(2):  # interleaved
            everything = {row[0] for row in data(await a.call_tool("search_files", {}))["rows"]}
            inside = {row[0] for row in data(await b.call_tool("search_files", {}))["rows"]}
            assert site.out_file in everything
            assert inside == {site.in_file, site.nested_file}
        bounds = []
        for client in (a, b):
            (tool,) = [t for t in (await client.list_tools()).tools if t.name == "generate_download_url"]
            bounds.append(tool.input_schema["properties"]["file_ids"]["maxItems"])
        assert bounds == [7, 3]


def folder_names(page: dict[str, Any]) -> set[str]:
    return {folder["name"] for folder in page["folders"]}


async def test_folder_names_follow_a_change_made_elsewhere_within_their_lifetime(
    client: Client, wix: WixMediaClient, tmp_path: Path, clock: FakeClock
) -> None:
    album = await wix.create_folder("Summer")
    await put(wix, tmp_path, "beach.png", folder=album.id)
    assert folder_names(data(await client.call_tool("search_files", {}))) == {"Summer"}
    await wix.update_folder(msg.FolderUpdate(id=album.id, display_name="Winter"))  # the Wix dashboard, say
    assert folder_names(data(await client.call_tool("search_files", {}))) == {"Summer"}
    clock.advance(FOLDER_NAME_SECONDS)
    assert folder_names(data(await client.call_tool("search_files", {}))) == {"Winter"}


async def test_folder_names_change_at_once_after_a_change_through_the_server(
    client: Client, wix: WixMediaClient, tmp_path: Path
) -> None:
    parent = await wix.create_folder("Trips")
    album = await wix.create_folder("Summer", parent.id)
    await put(wix, tmp_path, "beach.png", folder=album.id)
    file = data(await client.call_tool("search_files", {}))
    assert file["folders"][0]["path"] == "Trips/Summer"
    await client.call_tool("update_folder", {"folder_id": parent.id, "name": "Travels"})
    assert data(await client.call_tool("search_files", {}))["folders"][0]["path"] == "Travels/Summer"
    await client.call_tool("update_folder", {"folder_id": album.id, "name": "Sun"})
    assert folder_names(data(await client.call_tool("search_files", {}))) == {"Sun"}


# --- sealed cursors ----------------------------------------------------------------------------------


async def first_cursor(client: Client, **args: Any) -> str:
    page = data(await client.call_tool("search_files", {"limit": 1, **args}))
    cursor: str = page["next_cursor"]
    return cursor


def edited(cursor: str) -> list[str]:
    """Cursors an agent could make from a real one (it cannot re-encrypt one): a character changed in the nonce,
    the ciphertext, the tag or the last character's spare bits, cut short, lengthened, or spelled in standard base64;
    and a value in the signed format cursors once had."""

    def changed(at: int) -> str:
        return cursor[:at] + ("A" if cursor[at] != "A" else "B") + cursor[at + 1 :]

    spots = (0, 14, len(cursor) // 2, len(cursor) - 2, len(cursor) - 1)
    variants = [changed(at) for at in spots] + [cursor[:-1], cursor[:-4], cursor + "A", cursor + "AAAA"]
    variants += [cursor.replace("-", "+").replace("_", "/"), "eyJ9.AAAA", "not a cursor"]
    return [v for v in variants if v != cursor]


@bounded
async def test_an_edited_cursor_is_refused(client: Client, wix: WixMediaClient, tmp_path: Path) -> None:
    for n in range(3):
        await put(wix, tmp_path, f"beach-{n}.png")
    cursor = await first_cursor(client)
    for forged in edited(cursor):
        text = refusal(await client.call_tool("search_files", {"limit": 1, "cursor": forged}))
        assert "altered or comes from another server" in text and "drop the cursor" in text, (forged, text)
    text = refusal(await client.call_tool("search_files", {"limit": 1, "cursor": "é" + cursor}))
    assert "not one this server issued" in text and "drop the cursor" in text
    assert data(await client.call_tool("search_files", {"limit": 1, "cursor": cursor}))["rows"]


@bounded
async def test_a_cursor_with_other_filters_is_refused(client: Client, wix: WixMediaClient, tmp_path: Path) -> None:
    for name in ("beach-1.png", "beach-2.png", "mountains-1.png", "mountains-2.png"):
        await put(wix, tmp_path, name)
    beach = await first_cursor(client, query="beach")
    text = refusal(await client.call_tool("search_files", {"query": "mountains", "limit": 1, "cursor": beach}))
    assert "other search arguments" in text and "drop the cursor to start a new search" in text
    for other in ({"private": True}, {"sort_by": "name"}, {"media_types": ["VIDEO"]}, {"root": "TRASH_ROOT"}):
        args = {"query": "beach", "limit": 1, "cursor": beach, **other}
        assert "other search arguments" in refusal(await client.call_tool("search_files", args)), other
    kind = refusal(await client.call_tool("search_folders", {"query": "beach", "cursor": beach}))
    assert "another kind of search" in kind
    page = data(await client.call_tool("search_files", {"query": "beach", "limit": 5, "cursor": beach}))
    assert [row[1] for row in page["rows"]] and all("beach" in row[1] for row in page["rows"])


@bounded
async def test_a_cursor_from_another_server_or_scope_is_refused(
    make_server: MakeServer, mode: str, wix: WixMediaClient, tmp_path: Path, site: Site
) -> None:
    async with Client(make_server(confirm_secret="a" * 32), mode=mode) as one:
        cursor = await first_cursor(one)
    async with Client(make_server(confirm_secret="b" * 32), mode=mode) as other:
        text = refusal(await other.call_tool("search_files", {"limit": 1, "cursor": cursor}))
        assert "altered or comes from another server" in text
    # the same key, but a folder scope: a cursor minted without it lists nothing under it
    async with Client(make_server(confirm_secret="a" * 32, allowed_folders=site.inside), mode=mode) as scoped:
        text = refusal(await scoped.call_tool("search_files", {"limit": 1, "cursor": cursor}))
        assert "other folder limits" in text


@bounded
async def test_a_cursor_expires(client: Client, wix: WixMediaClient, tmp_path: Path, clock: FakeClock) -> None:
    for n in range(2):
        await put(wix, tmp_path, f"beach-{n}.png")
    cursor = await first_cursor(client)
    clock.advance(3601)
    assert "expired" in refusal(await client.call_tool("search_files", {"limit": 1, "cursor": cursor}))


# --- confirmation bound to content -------------------------------------------------------------------


@dataclass
class Album:
    folder: str
    sub: str
    files: list[str]


@pytest.fixture
async def album(wix: WixMediaClient, tmp_path: Path) -> Album:
    folder = (await wix.create_folder("Old")).id
    sub = (await wix.create_folder("2019", folder)).id
    files = [await put(wix, tmp_path, f"photo-{n}.png", folder=folder) for n in range(3)]
    files += [await put(wix, tmp_path, f"deep-{n}.png", folder=sub, private=n == 0) for n in range(3)]
    return Album(folder, sub, files)


@pytest.fixture
async def token_client(make_server: MakeServer, mode: str) -> AsyncIterator[Client]:
    async with Client(make_server(confirm="token"), mode=mode) as client:
        yield client


@bounded
async def test_a_folder_preview_counts_everything_it_holds(token_client: Client, album: Album) -> None:
    preview = data(await token_client.call_tool("move_to_trash", {"folder_ids": [album.folder]}))
    assert preview["status"] == "confirmation_required"
    size = 6 * len(PNG_16x8)
    names = ["photo-0.png", "photo-1.png", "photo-2.png", "deep-0.png", "deep-1.png", "deep-2.png"]
    assert sorted(preview["content"]["names"]) == sorted(names)
    assert (preview["content"]["files"], preview["content"]["folders"]) == (6, 2)
    assert (preview["content"]["bytes"], preview["content"]["private_files"]) == (size, 1)
    (item,) = preview["items"]
    assert (item["files"], item["folders"], item["size"], item["private_files"]) == (6, 1, size, 1)
    assert f"6 file(s) and 2 folder(s) in all, {size} bytes, 1 of them private" in preview["message"]


@bounded
async def test_a_change_after_the_preview_does_nothing_and_previews_afresh(
    token_client: Client, wix: WixMediaClient, album: Album, tmp_path: Path
) -> None:
    preview = data(await token_client.call_tool("move_to_trash", {"folder_ids": [album.folder]}))
    late = await put(wix, tmp_path, "added-later.png", folder=album.sub)  # after the person saw the preview
    args = {"folder_ids": [album.folder], "confirmation_token": preview["confirmation_token"]}
    changed = data(await token_client.call_tool("move_to_trash", args))
    assert changed["status"] == "changed" and "nothing was done" in changed["message"]
    assert changed["content"]["files"] == 7 and "added-later.png" in changed["content"]["names"]
    assert not await trashed(wix, late) and not await trashed(wix, album.files[0])
    args["confirmation_token"] = changed["confirmation_token"]  # the person agrees to the new preview
    done = data(await token_client.call_tool("move_to_trash", args))
    assert done["status"] == "done" and done["content"]["files"] == 7
    assert "7 file(s) and 2 folder(s) in all" in done["message"]
    assert done["undo"] == {"tool": "restore_from_trash", "file_ids": [], "folder_ids": [album.folder]}
    assert await trashed(wix, late) and all([await trashed(wix, f) for f in album.files])


@bounded
async def test_moving_a_file_out_after_the_preview_also_counts_as_a_change(
    token_client: Client, wix: WixMediaClient, album: Album
) -> None:
    preview = data(await token_client.call_tool("move_to_trash", {"folder_ids": [album.folder]}))
    await wix.update_file(msg.FileUpdate(id=album.files[0], parent_folder_id="media-root"))
    args = {"folder_ids": [album.folder], "confirmation_token": preview["confirmation_token"]}
    assert data(await token_client.call_tool("move_to_trash", args))["status"] == "changed"
    assert not await trashed(wix, album.files[1])


@dataclass
class MeddlingHuman:
    """Adds a file to the folder while the first form is open, then agrees to whatever it is shown."""

    wix: WixMediaClient
    tmp_path: Path
    folder: str
    messages: list[str] = field(default_factory=list)

    async def __call__(self, context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        self.messages.append(params.message)
        if len(self.messages) == 1:
            await put(self.wix, self.tmp_path, "slipped-in.png", folder=self.folder)
        return ElicitResult(action="accept", content={"confirm": True})


@bounded
async def test_a_change_while_the_form_is_open_is_never_approved_unseen(
    make_server: MakeServer, mode: str, wix: WixMediaClient, album: Album, tmp_path: Path
) -> None:
    human = MeddlingHuman(wix, tmp_path, album.folder)
    async with Client(make_server(), mode=mode, elicitation_callback=human) as client:
        answer = data(await client.call_tool("move_to_trash", {"folder_ids": [album.folder]}))
    assert "slipped-in.png" not in human.messages[0]
    if answer["status"] == "done":  # asked again (the question changed): the person saw the new file
        assert len(human.messages) == 2 and "7 file(s)" in human.messages[1]
        assert answer["content"]["files"] == 7
    else:  # the body saw the change: nothing done, a fresh preview instead
        assert answer["status"] == "changed" and answer["content"]["files"] == 7
        assert not await trashed(wix, album.files[0])


@bounded
async def test_a_token_works_once_across_restarts_and_processes(
    make_server: MakeServer, mode: str, wix: WixMediaClient, album: Album
) -> None:
    async with Client(make_server(confirm="token"), mode=mode) as first:
        preview = data(await first.call_tool("move_to_trash", {"file_ids": album.files[:2]}))
        args = {"file_ids": album.files[:2], "confirmation_token": preview["confirmation_token"]}
        async with Client(make_server(confirm="token"), mode=mode) as sibling:  # same data directory
            assert data(await first.call_tool("move_to_trash", args))["status"] == "done"
            data(await first.call_tool("restore_from_trash", {"file_ids": album.files[:2]}))
            assert "already used" in refusal(await sibling.call_tool("move_to_trash", args))
    async with Client(make_server(confirm="token"), mode=mode) as restarted:
        assert "already used" in refusal(await restarted.call_tool("move_to_trash", args))
    assert not await trashed(wix, album.files[0])


@bounded
async def test_the_scope_root_cannot_be_trashed_from_inside(
    make_server: MakeServer, mode: str, wix: WixMediaClient, site: Site
) -> None:
    async with Client(make_server(allowed_folders=site.inside, confirm="allow"), mode=mode) as client:
        answer = data(await client.call_tool("move_to_trash", {"folder_ids": [site.inside]}))
        assert answer["status"] == "nothing_to_do"
        assert answer["items"][0]["status"] == "refused" and "root" in answer["items"][0]["note"]
        nested = data(await client.call_tool("move_to_trash", {"folder_ids": [site.nested]}))
        assert nested["status"] == "done"
        undo = data(await client.call_tool("restore_from_trash", {"folder_ids": [site.nested]}))
        assert undo["items"][0]["status"] == "done" and undo["items"][0]["folder"]["id"] == site.inside
    assert (await wix.get_folder(site.inside)).state.value == "OK"


# --- truthful answers --------------------------------------------------------------------------------


@bounded
async def test_restore_answers_per_item(make_server: MakeServer, mode: str, wix: WixMediaClient, album: Album) -> None:
    live, binned = album.files[0], album.files[1]
    await wix.bulk_delete_files([binned])
    async with Client(make_server(), mode=mode) as client:
        nothing = data(await client.call_tool("restore_from_trash", {"file_ids": ["nope"]}))
        assert (nothing["status"], nothing["items"][0]["status"]) == ("nothing_to_do", "not_found")
        assert "restored" not in nothing["message"].lower().replace("nothing was restored", "")
        mixed = data(await client.call_tool("restore_from_trash", {"file_ids": [live, binned, "nope"]}))
    statuses = {i["id"]: i["status"] for i in mixed["items"]}
    assert statuses == {live: "not_in_trash", binned: "done", "nope": "not_found"}
    assert mixed["status"] == "partly_done"
    back = next(i for i in mixed["items"] if i["id"] == binned)
    assert back["folder"] == {"id": album.folder, "name": "Old"}  # where it went, by name
    assert "photo-1.png" in mixed["message"] and '"Old"' in mixed["message"]
    assert not await trashed(wix, binned)


@bounded
async def test_trash_answers_per_item(token_client: Client, wix: WixMediaClient, album: Album) -> None:
    await wix.bulk_delete_files([album.files[1]])
    preview = data(await token_client.call_tool("move_to_trash", {"file_ids": [album.files[0], album.files[1], "x"]}))
    statuses = [(i["id"], i["status"]) for i in preview["items"]]
    assert statuses == [(album.files[0], "ready"), (album.files[1], "already_in_trash"), ("x", "not_found")]
    assert preview["content"]["files"] == 1


# --- tools are plain functions --------------------------------------------------------------------------


async def test_a_tool_is_a_plain_function_of_the_guard(wix: WixMediaClient, tmp_path: Path, server_dir: Path) -> None:
    from media_mcp.guard import Guard, StaticBackend
    from media_mcp.server.tools import read
    from media_mcp.settings import ServerSettings

    cat = await put(wix, tmp_path, "cat.png")
    guard = Guard(ServerSettings(), StaticBackend(wix, "local"), data_dir=server_dir)
    table = await read.search_files(guard, query="cat")
    assert [row[:2] for row in table.rows] == [[cat, "cat.png"]]
    details = await read.get_file(guard, file_id=cat)
    assert details.files[0].folder.name == "Media"


async def test_a_read_only_guard_writes_nothing_even_when_called_directly(
    wix: WixMediaClient, tmp_path: Path, server_dir: Path
) -> None:
    """Read-only holds below the tool list too: the guard's adapter sends only the calls that change nothing."""
    from media_mcp.guard import Guard, GuardError, StaticBackend
    from media_mcp.settings import ServerSettings

    cat = await put(wix, tmp_path, "cat.png")
    folder = (await wix.create_folder("Old")).id
    gone = await put(wix, tmp_path, "gone.png")
    await wix.bulk_delete_files([gone])
    before = [(await wix.get_file(i)).model_dump() for i in (cat, gone)] + [(await wix.get_folder(folder)).model_dump()]
    guard = Guard(ServerSettings(read_only=True, confirm="allow"), StaticBackend(wix, "local"), data_dir=server_dir)
    writes = {
        "create_folder": guard.create_folder(name="new", parent_id=None),
        "update_files": guard.update_files([cat], name="renamed.png", add_labels=["x"]),
        "update_folder": guard.update_folder(folder, name="renamed", parent_id=None),
        "trash": guard.trash([cat], [folder]),
        "restore": guard.restore([gone], []),
        "upload_link": guard.upload_link(
            file_name="a.png", mime_type="image/png", size_bytes=10, folder_id=None, private=False, resumable=None
        ),  # fmt: skip
        "import_file": guard.import_file(
            url="http://127.0.0.1:9/a.png", name=None, folder_id=None, private=False, mime_type=None
        ),  # fmt: skip
    }
    for name, write in writes.items():
        try:
            said = json.dumps((await write).model_dump())  # tools that answer per item say it there
        except GuardError as exc:
            said = str(exc)
        assert "read-only" in said and "credentials" not in said, (name, said)
    after = [(await wix.get_file(i)).model_dump() for i in (cat, gone)] + [(await wix.get_folder(folder)).model_dump()]
    assert after == before
    assert (await guard.get_files([cat]))[0].name == "cat.png"  # reads still work


async def test_a_fresh_server_data_directory_is_the_owners_only(wix: WixMediaClient, tmp_path: Path) -> None:
    """On the Wix backend no library tightens the data directory: the guard's own files must make it 0700."""
    fresh = tmp_path / "fresh" / "data"
    old = os.umask(0o022)
    try:
        create_server(ServerSettings(), StaticBackend(wix, "wix"), data_dir=fresh)
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    for path in fresh.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


class FakeWix:
    """Wix's files search as the guard meets it: two pages, Wix's own opaque cursor between them."""

    WIX_CURSOR = "wix:opaque/cursor+Zm9v=="

    def __init__(self) -> None:
        self.cursors: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/site-media/v1/files/search", request.url
        cursor = (json.loads(request.content).get("paging") or {}).get("cursor")
        self.cursors.append(cursor)
        name, following = ("first.png", self.WIX_CURSOR) if cursor is None else ("second.png", None)
        file = {"id": f"site_{name}", "displayName": name, "parentFolderId": "media-root", "mediaType": "IMAGE",
                "operationStatus": "READY", "sizeInBytes": "10", "state": "OK"}  # fmt: skip
        return httpx.Response(200, json={"files": [file], "nextCursor": {"cursors": {"next": following}}})


async def test_wix_cursors_are_sealed_the_same_way(mode: str, server_dir: Path) -> None:
    """On the Wix backend the guard wraps Wix's own cursor: the agent never sees it, and cannot edit or reuse it."""
    fake = FakeWix()
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    adapter = WixMediaClient("http://wix.test", ApiKeyAuth(SecretStr("key"), "site"), http=http)
    server = create_server(ServerSettings(), StaticBackend(adapter, "wix"), data_dir=server_dir)
    async with Client(server, mode=mode) as client:
        first = data(await client.call_tool("search_files", {"query": "photo", "limit": 1}))
        cursor = first["next_cursor"]
        assert FakeWix.WIX_CURSOR not in cursor and "opaque" not in json.dumps(first)
        for forged in edited(cursor):
            assert "drop the cursor" in refusal(
                await client.call_tool("search_files", {"query": "photo", "limit": 1, "cursor": forged})
            )
        other = refusal(await client.call_tool("search_files", {"query": "other", "limit": 1, "cursor": cursor}))
        assert "drop the cursor to start a new search" in other
        second = data(await client.call_tool("search_files", {"query": "photo", "limit": 1, "cursor": cursor}))
        assert [row[1] for row in second["rows"]] == ["second.png"] and "next_cursor" not in second
    assert fake.cursors == [None, FakeWix.WIX_CURSOR]  # Wix got back exactly its own cursor, once, and nothing forged
