"""Tools shaped for what people ask: batches, folders people recognise, answers an agent can relay, and the
everyday requests of a site owner as scripted scenarios, each counting the calls an agent makes.

Every scenario drives the tools the way an agent would (reading ids from the previous answers, never from the test's
own knowledge), then checks the end state in the library and the number of calls. ``REST_CALLS`` is what the same
request takes at least through a generic "call the REST API" tool: the Wix Media API has no bulk update, no batch
download link, no folder walk and no totals, so every file changed, linked or counted by folder costs a request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult

from media_mcp.library.service import Library
from media_mcp.wix.client import WixMediaClient
from tests.conftest import FakeClock, PNG_16x8
from tests.server.conftest import MakeServer
from tests.server.test_guardrails import IMPORT_SOURCE, wix
from tests.server.test_tools import call, failure, ok, seed, table

__all__ = ["wix"]  # the fixture with an offline import source
pytestmark = pytest.mark.anyio

WAIT = 30  # seconds: the bound on any one test's dialogue with the server
Json = dict[str, Any]


@dataclass
class Agent:
    """A client that counts the tool calls it makes, as an agent's transcript would."""

    client: Client
    calls: list[str] = field(default_factory=list)

    async def __call__(self, tool: str, args: Json | None = None) -> Json:
        self.calls.append(tool)
        return ok(await self.client.call_tool(tool, args or {}))

    async def raw(self, tool: str, args: Json) -> CallToolResult:
        self.calls.append(tool)
        return await self.client.call_tool(tool, args)


# --- batches -----------------------------------------------------------------------------------------


async def test_update_file_moves_renames_and_relabels_many_files_in_one_call(
    client: Client, wix: WixMediaClient
) -> None:
    invoices = [await seed(wix, f"invoice-{n}.pdf", mime="application/pdf", labels=["2024"]) for n in range(4)]
    folder = (await wix.create_folder("Invoices")).id
    with anyio.fail_after(WAIT):
        moved = await call(client, "update_file", {"file_ids": invoices, "folder_id": folder, "add_labels": ["paid"]})
        assert moved["status"] == "done" and moved["not_changed"] == []
        assert {f["folder"]["name"] for f in moved["files"]} == {"Invoices"}
        assert all(f["labels"] == ["2024", "paid"] for f in moved["files"])
        assert moved["message"] == '4 file(s) moved to "Invoices", relabelled.'
        renamed = await call(
            client, "update_file", {"names": {invoices[0]: "march.pdf", invoices[1]: "april.pdf"},
                                    "remove_labels": ["2024"]},
        )  # fmt: skip
        assert sorted(f["name"] for f in renamed["files"]) == ["april.pdf", "march.pdf"]
        assert all(f["labels"] == ["paid"] for f in renamed["files"])
    for file_id in invoices:
        stored = await wix.get_file(file_id)
        assert stored.parent_folder_id == folder
    assert (await wix.get_file(invoices[0])).display_name == "march.pdf"
    assert (await wix.get_file(invoices[3])).labels == ["2024", "paid"]


async def test_moving_a_file_to_the_folder_it_is_in_answers_it_unchanged(client: Client, wix: WixMediaClient) -> None:
    folder = (await wix.create_folder("Here")).id
    file_id = await seed(wix, "here.png", folder=folder)
    with anyio.fail_after(WAIT):
        answer = await call(client, "update_file", {"file_id": file_id, "folder_id": folder})
    assert answer["status"] == "done" and answer["files"][0]["folder"]["id"] == folder


async def test_a_batch_update_answers_each_file_and_changes_the_others(client: Client, wix: WixMediaClient) -> None:
    kept = await seed(wix, "kept.png")
    binned = await seed(wix, "binned.png")
    await wix.bulk_delete_files([binned])
    with anyio.fail_after(WAIT):
        answer = await call(client, "update_file", {"file_ids": [kept, binned, "no-such-file"], "labels": ["x"]})
    assert answer["status"] == "partly_done"
    assert [f["id"] for f in answer["files"]] == [kept]
    assert {i["id"]: i["status"] for i in answer["not_changed"]} == {binned: "refused", "no-such-file": "not_found"}
    assert "Not changed" in answer["message"]
    assert (await wix.get_file(binned)).labels == []
    with anyio.fail_after(WAIT):
        nothing = failure(await client.call_tool("update_file", {"file_ids": [kept, binned], "name": "x.png"}))
        assert "names" in nothing  # one name for several files is refused, with the way to do it
        alone = failure(await client.call_tool("update_file", {"file_id": "no-such-file", "labels": ["x"]}))
        assert "was not found" in alone  # one file asked for: its failure is the answer


async def test_download_links_for_many_files_each_say_when_they_expire(
    make_server: MakeServer, wix: WixMediaClient, mode: str, clock: FakeClock
) -> None:
    public = await seed(wix, "open.png")
    private = await seed(wix, "secret.png", private=True)
    async with Client(make_server(), mode=mode) as client:
        with anyio.fail_after(WAIT):
            answer = await call(
                client, "generate_download_url", {"file_ids": [public, private, "no-such"], "expiration_minutes": 60}
            )
    by_file = {link["file_id"]: link for link in answer["links"]}
    assert set(by_file) == {public, private}
    assert by_file[private]["private"] and not by_file[public]["private"]
    assert by_file[private]["expires_at"] < by_file[public]["expires_at"]
    assert answer["expiration_minutes"] == 15 and answer["clamped"] is True
    assert answer["expires_at"] == by_file[private]["expires_at"]
    assert [i["status"] for i in answer["not_linked"]] == ["not_found"]
    note = answer["note"]  # one sentence to pass on: the cap that cut the ask, the first expiry, and what to do
    assert "private files' links last at most 15 minutes" in note
    assert by_file[private]["expires_at"] in note and "Ask for new links" in note


async def test_upload_file_takes_several_files_or_a_directory_with_labels_and_progress(
    client: Client, wix: WixMediaClient, upload_root: Path
) -> None:
    shoot = upload_root / "shoot"
    shoot.mkdir()
    for n in range(3):
        (shoot / f"IMG_{n}.png").write_bytes(PNG_16x8)
    (shoot / ".DS_Store").write_bytes(b"hidden")
    (upload_root / "single.png").write_bytes(PNG_16x8)
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    with anyio.fail_after(WAIT):
        result = await client.call_tool(
            "upload_file", {"paths": ["shoot", "single.png", "missing.png"], "labels": ["summer shoot"]},
            progress_callback=on_progress,
        )  # fmt: skip
    answer = ok(result)
    assert answer["status"] == "partly_done"
    assert sorted(f["name"] for f in answer["files"]) == ["IMG_0.png", "IMG_1.png", "IMG_2.png", "single.png"]
    assert [f["path"] for f in answer["failed"]] == ["missing.png"]
    assert "not a file inside the allowed upload roots" in answer["failed"][0]["reason"]
    for file in answer["files"]:
        assert (await wix.get_file(file["id"])).labels == ["summer shoot"]
    assert seen and seen[-1][1] == 4 * len(PNG_16x8)  # progress of the whole batch, in bytes


async def test_import_file_sets_labels(client: Client, wix: WixMediaClient) -> None:
    with anyio.fail_after(WAIT):
        answer = await call(client, "import_file", {"url": IMPORT_SOURCE, "name": "cat.png", "labels": ["web"]})
    assert (await wix.get_file(answer["file"]["id"])).labels == ["web"]


async def test_a_failed_import_says_why(client: Client, wix: WixMediaClient, library: Library) -> None:
    source = "https://alice:hunter2@pictures.example/missing.png?token=secret-123"
    with anyio.fail_after(WAIT):
        started = await call(client, "import_file", {"url": source, "name": "gone.png"})
        await library.settle()  # the fetch runs after the answer
        (file,) = (await call(client, "get_file", {"file_id": started["file"]["id"]}))["files"]
    assert (file["status"], file["failure"]) == ("FAILED", "the source answered HTTP 404")
    assert not [secret for secret in ("alice", "hunter2", "secret-123") if secret in str(file)]
    fine = await call(client, "get_file", {"file_id": await seed(wix, "fine.png")})
    assert "failure" not in fine["files"][0]


# --- folders people can recognise --------------------------------------------------------------------


async def test_folders_are_named_with_their_path_and_read_as_a_tree(client: Client, wix: WixMediaClient) -> None:
    clients = (await wix.create_folder("Clients")).id
    acme = (await wix.create_folder("Acme", clients)).id
    year = (await wix.create_folder("2024", acme)).id
    await wix.create_folder("Drafts", year)
    logo = await seed(wix, "logo.png", folder=year)
    with anyio.fail_after(WAIT):
        file = (await call(client, "get_file", {"file_id": logo}))["files"][0]
        assert file["folder"] == {"id": year, "name": "2024", "path": "Clients/Acme/2024"}
        top = await call(client, "get_folder", {"folder_id": clients, "depth": 3})
        assert "path" not in top["folder"]  # a top-level folder's path is its name
        drafts = top["subfolders"][0]["subfolders"][0]["subfolders"][0]["id"]
        year_node = {"id": year, "name": "2024", "subfolders": [{"id": drafts, "name": "Drafts"}]}
        assert top["subfolders"] == [{"id": acme, "name": "Acme", "subfolders": [year_node]}]
        shallow = await call(client, "get_folder", {"folder_id": acme})
        assert [f["name"] for f in shallow["subfolders"]] == ["2024"] and "subfolders" not in shallow["subfolders"][0]


async def test_update_folder_renames_and_moves_a_folder_but_never_into_itself(
    client: Client, wix: WixMediaClient
) -> None:
    old = (await wix.create_folder("Old")).id
    inner = (await wix.create_folder("Inner", old)).id
    archive = (await wix.create_folder("Archive")).id
    with anyio.fail_after(WAIT):
        renamed = await call(client, "update_folder", {"folder_id": old, "name": "Old 2023"})
        assert renamed["folder"]["name"] == "Old 2023"
        moved = await call(client, "update_folder", {"folder_id": old, "parent_folder_id": archive})
        assert moved["folder"]["parent"]["name"] == "Archive" and moved["folder"]["path"] == "Archive/Old 2023"
        assert "into itself" in failure(
            await client.call_tool("update_folder", {"folder_id": old, "parent_folder_id": inner})
        )
        assert "system folder" in failure(await client.call_tool("update_folder", {"folder_id": "media-root",
                                                                                  "name": "x"}))  # fmt: skip
        assert "was not found" in failure(await client.call_tool("update_folder", {"folder_id": "nope", "name": "x"}))
    assert (await wix.get_folder(old)).parent_folder_id == archive
    assert (await wix.get_folder(inner)).parent_folder_id == old


async def test_a_scope_root_cannot_be_moved_and_nothing_moves_outside(
    make_server: MakeServer, wix: WixMediaClient, mode: str
) -> None:
    root = (await wix.create_folder("Team")).id
    inner = (await wix.create_folder("Inner", root)).id
    outside = (await wix.create_folder("Elsewhere")).id
    async with Client(make_server(allowed_folders=root), mode=mode) as client:
        with anyio.fail_after(WAIT):
            assert "cannot be moved" in failure(
                await client.call_tool("update_folder", {"folder_id": root, "parent_folder_id": inner})
            )
            assert "was not found" in failure(
                await client.call_tool("update_folder", {"folder_id": inner, "parent_folder_id": outside})
            )
            renamed = await call(client, "update_folder", {"folder_id": inner, "name": "Renamed"})
    assert renamed["folder"]["path"] == "Team/Renamed"  # the path starts at the scope: nothing above it shows
    assert (await wix.get_folder(inner)).parent_folder_id == root


async def test_recursive_search_pages_through_every_subfolder(client: Client, wix: WixMediaClient) -> None:
    old = (await wix.create_folder("Old")).id
    empty = (await wix.create_folder("Empty", old)).id
    deep = (await wix.create_folder("Deep", empty)).id
    names = {await seed(wix, "a.png", folder=old): "a.png", await seed(wix, "b.png", folder=deep): "b.png",
             await seed(wix, "c.png", folder=deep): "c.png"}  # fmt: skip
    await seed(wix, "elsewhere.png")
    found: list[str] = []
    with anyio.fail_after(WAIT):
        args: Json = {"folder_id": old, "recursive": True, "limit": 1}
        while True:
            page = await call(client, "search_files", args)
            found += [row["id"] for row in table(page)]
            if "next_cursor" not in page:
                break
            args["cursor"] = page["next_cursor"]
        assert sorted(found) == sorted(names)
        only_direct = await call(client, "search_files", {"folder_id": old})
        assert [row["name"] for row in table(only_direct)] == ["a.png"]
        matched = await call(client, "search_files", {"folder_id": old, "recursive": True, "query": "c"})
        assert [row["name"] for row in table(matched)] == ["c.png"]
        assert "recursive needs folder_id" in failure(await client.call_tool("search_files", {"recursive": True}))


async def test_trashed_items_say_where_they_came_from_and_when(
    make_server: MakeServer, wix: WixMediaClient, mode: str, clock: FakeClock
) -> None:
    folder = (await wix.create_folder("Blog")).id
    post = await seed(wix, "post.png", folder=folder)
    async with Client(make_server(confirm="allow"), mode=mode) as client:
        with anyio.fail_after(WAIT):
            await call(client, "move_to_trash", {"file_ids": [post]})
            (binned,) = (await call(client, "get_file", {"file_id": post}))["files"]
            assert binned["in_trash"] and binned["trashed_from"] == {"id": folder, "name": "Blog"}
            assert binned["trashed_at"].startswith("20")
            page = await call(client, "search_files", {"root": "TRASH_ROOT", "fields": ["name", "in_trash"]})
            assert table(page)[0]["name"] == "post.png"
            back = await call(client, "restore_from_trash", {"file_ids": [post]})
            assert back["items"][0]["folder"] == {"id": folder, "name": "Blog"}
            assert 'to "Blog"' in back["message"]


# --- what the agent may upload, and a site summary ---------------------------------------------------


async def test_list_local_files_shows_what_may_be_uploaded_and_nothing_else(
    client: Client, upload_root: Path, tmp_path: Path
) -> None:
    (upload_root / "photo.png").write_bytes(PNG_16x8)
    (upload_root / "clip.mp4").write_bytes(b"\x00" * 10)
    (upload_root / "page.html").write_text("<script></script>")  # a type uploads refuse
    (upload_root / ".secret.png").write_bytes(PNG_16x8)  # hidden
    nested = upload_root / "album"
    nested.mkdir()
    (nested / "deep.png").write_bytes(PNG_16x8)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "private.png").write_bytes(PNG_16x8)
    os.symlink(outside, upload_root / "link-dir")
    os.symlink(outside / "private.png", upload_root / "link.png")
    with anyio.fail_after(WAIT):
        top = await call(client, "list_local_files")
        assert [(f["path"], f["type"]) for f in top["files"]] == [
            (str(upload_root.resolve() / "clip.mp4"), "VIDEO"), (str(upload_root.resolve() / "photo.png"), "IMAGE")
        ]  # fmt: skip
        assert top["roots"] == [str(upload_root.resolve())] and "1 left out" in top["message"]
        everything = await call(client, "list_local_files", {"recursive": True, "media_types": ["IMAGE"]})
        assert [Path(f["path"]).name for f in everything["files"]] == ["photo.png", "deep.png"]
        assert [Path(f["path"]).name for f in (await call(client, "list_local_files", {"path": "album"}))["files"]] == [
            "deep.png"
        ]
        cut = await call(client, "list_local_files", {"limit": 1})
        assert len(cut["files"]) == 1 and cut["truncated"] is True
        for path in (str(outside), "link-dir", "../elsewhere", "/etc"):
            assert "not a directory inside the allowed upload roots" in failure(
                await client.call_tool("list_local_files", {"path": path})
            ), path


async def test_summarize_media_counts_files_and_bytes_by_type(client: Client, wix: WixMediaClient) -> None:
    videos = (await wix.create_folder("Videos")).id
    sub = (await wix.create_folder("Raw", videos)).id
    await seed(wix, "a.mp4", data=b"v" * 1000, mime="video/mp4", folder=videos)
    await seed(wix, "b.mp4", data=b"v" * 3000, mime="video/mp4", folder=sub, private=True)
    await seed(wix, "cat.png")
    gone = await seed(wix, "old.png")
    await wix.bulk_delete_files([gone])
    with anyio.fail_after(WAIT):
        site = await call(client, "summarize_media", {"include_trash": True})
        by_type = {t["type"]: t for t in site["by_type"]}
        assert (by_type["VIDEO"]["files"], by_type["VIDEO"]["bytes"], by_type["VIDEO"]["private_files"]) == (2, 4000, 1)
        assert by_type["IMAGE"]["files"] == 1 and site["files"] == 3 and site["complete"] is True
        assert site["trash"]["files"] == 1
        assert site["by_type"][0]["type"] == "VIDEO"  # largest first
        assert "2 video file(s), 4.0 KB" in site["message"]
        folder = await call(client, "summarize_media", {"folder_id": videos})
        assert (folder["files"], folder["bytes"], folder["folder"]["name"]) == (2, 4000, "Videos")


async def test_summarize_media_under_a_scope_counts_only_the_scope(
    make_server: MakeServer, wix: WixMediaClient, mode: str
) -> None:
    team = (await wix.create_folder("Team")).id
    await seed(wix, "in.png", folder=team)
    await seed(wix, "out.png")
    async with Client(make_server(allowed_folders=team), mode=mode) as client:
        with anyio.fail_after(WAIT):
            answer = await call(client, "summarize_media")
    assert answer["files"] == 1 and answer["message"].startswith("In the folders here")


async def test_summarize_media_counts_a_scope_folder_inside_another_once(
    make_server: MakeServer, wix: WixMediaClient, mode: str
) -> None:
    team = (await wix.create_folder("Team")).id
    shoots = (await wix.create_folder("Shoots", (await wix.create_folder("Work", team)).id)).id
    await seed(wix, "in.png", folder=team)
    await seed(wix, "shoot.png", folder=shoots)
    await seed(wix, "out.png")
    for allowed in (f"{team},{shoots}", f"{shoots},{team}", f"{team},no-such-folder"):
        async with Client(make_server(allowed_folders=allowed), mode=mode) as client:
            with anyio.fail_after(WAIT):
                answer = await call(client, "summarize_media")
        assert answer["files"] == 2, (allowed, answer)  # at any depth, each once
    async with Client(make_server(allowed_folders="no-such-folder"), mode=mode) as client:
        with anyio.fail_after(WAIT):
            answer = await call(client, "summarize_media")
    assert answer["files"] == 0, answer  # a scope whose folder is gone counts nothing, never the whole site


# --- everyday requests, as scenarios -----------------------------------------------------------------

REST_CALLS = {
    # search the folder (1), then one Generate File Download URL per photo (3)
    "share the private photos of a folder": 4,
    # search (1), create the folder (1), one Update File Descriptor per invoice (4)
    "file the invoices into a new folder": 6,
    # find the folder (1), then the delete; a REST tool shows no preview: what goes inside is a walk of the tree
    # (list subfolders and files of each folder: 2 per folder, 2 folders) to tell the person, then the delete (1)
    "delete an old folder": 6,
    # Bulk Restore Files (1): it needs the ids, which the trash listing gives (1)
    "undo a deletion": 2,
    # per photo: Generate Upload URL and the PUT (2 x 3), then the labels ride along
    "upload a shoot with a label": 6,
    # no totals in the API: page through every file (1 page here), and add up by type in the model
    "count the videos and their size": 1,
    # Generate File Resumable Upload URL (1)
    "give a colleague an upload link for a big video": 1,
    # search (1), one Update File Descriptor per file (4)
    "rename files": 5,
}
"""The fewest calls each request takes through a generic REST tool (see the module's docstring)."""


async def test_everyday_requests_take_fewer_calls_than_a_rest_tool(
    make_server: MakeServer, wix: WixMediaClient, mode: str, upload_root: Path, library: Any
) -> None:
    shared = (await wix.create_folder("For the designer")).id
    photos = [await seed(wix, f"look-{n}.png", folder=shared, private=True) for n in range(3)]
    await seed(wix, "brief.pdf", mime="application/pdf", folder=shared)
    invoices = [await seed(wix, f"invoice {n}.pdf", mime="application/pdf") for n in range(4)]
    old = (await wix.create_folder("Old")).id
    old_inner = (await wix.create_folder("Old drafts", old)).id
    for n in range(3):
        await seed(wix, f"draft-{n}.png", folder=old_inner)
    shoot = upload_root / "shoot"
    shoot.mkdir()
    for n in range(3):
        (shoot / f"DSC_{n}.png").write_bytes(PNG_16x8)
    renames = [await seed(wix, f"IMG_{n}.png") for n in range(4)]
    used: dict[str, int] = {}
    async with Client(make_server(confirm="token"), mode=mode) as client:
        with anyio.fail_after(WAIT * 4):
            agent = Agent(client)  # 1. share the private photos of a folder with a designer
            found = await agent("search_folders", {"query": "designer"})
            page = await agent("search_files", {"folder_id": found["folders"][0]["id"], "private": True,
                                                "media_types": ["IMAGE"]})  # fmt: skip
            links = await agent("generate_download_url", {"file_ids": [r["id"] for r in table(page)]})
            assert sorted(link["file_id"] for link in links["links"]) == sorted(photos)
            used["share the private photos of a folder"] = len(agent.calls)

            agent = Agent(client)  # 2. file the invoices into a new folder
            page = await agent("search_files", {"query": "invoice"})
            folder = await agent("create_folder", {"name": "Invoices 2024"})
            filed = folder["folder"]["id"]
            await agent("update_file", {"file_ids": [r["id"] for r in table(page)], "folder_id": filed})
            assert [(await wix.get_file(i)).parent_folder_id for i in invoices] == [filed] * 4
            used["file the invoices into a new folder"] = len(agent.calls)

            agent = Agent(client)  # 3. delete an old folder (the person sees what goes, then agrees)
            found = await agent("search_folders", {"query": "Old"})
            target = next(f["id"] for f in found["folders"] if f["name"] == "Old")
            preview = await agent("move_to_trash", {"folder_ids": [target]})
            assert preview["content"]["files"] == 3 and preview["content"]["folders"] == 2
            done = await agent("move_to_trash", {"folder_ids": [target],
                                                 "confirmation_token": preview["confirmation_token"]})  # fmt: skip
            assert done["status"] == "done"
            used["delete an old folder"] = len(agent.calls)

            agent = Agent(client)  # 4. undo that deletion: the answer carried the exact undo
            undo = {"file_ids": done["undo"]["file_ids"], "folder_ids": done["undo"]["folder_ids"]}
            back = await agent("restore_from_trash", undo)
            assert back["status"] == "done" and (await wix.get_folder(old)).parent_folder_id == "media-root"
            used["undo a deletion"] = len(agent.calls)

            agent = Agent(client)  # 5. upload a shoot with a label
            local = await agent("list_local_files", {"recursive": True})
            directory = str(Path(local["files"][0]["path"]).parent)
            uploaded = await agent("upload_file", {"path": directory, "labels": ["summer shoot"]})
            assert len(uploaded["files"]) == 3 and all(f["labels"] == ["summer shoot"] for f in uploaded["files"])
            used["upload a shoot with a label"] = len(agent.calls)

            agent = Agent(client)  # 6. count the videos and their size
            summary = await agent("summarize_media")
            assert summary["complete"] and summary["files"] > 0
            used["count the videos and their size"] = len(agent.calls)

            agent = Agent(client)  # 7. what a colleague needs to upload a 300 MB video
            grant = await agent("generate_upload_url", {"file_name": "keynote.mp4", "mime_type": "video/mp4",
                                                        "size_bytes": 300_000_000})  # fmt: skip
            assert grant["protocol"] == "TUS" and grant["expires_at"]
            used["give a colleague an upload link for a big video"] = len(agent.calls)

            agent = Agent(client)  # 8. rename files
            page = await agent("search_files", {"query": "IMG"})
            new = {row["id"]: f"holiday-{n}.png" for n, row in enumerate(table(page))}
            await agent("update_file", {"names": new})
            assert sorted([(await wix.get_file(i)).display_name for i in renames]) == sorted(new.values())
            used["rename files"] = len(agent.calls)
    assert set(used) == set(REST_CALLS)
    assert sum(used.values()) <= 0.6 * sum(REST_CALLS.values()), (used, REST_CALLS)
    for request, calls in used.items():
        assert calls <= REST_CALLS[request], (request, calls)


async def test_schemas_state_the_bounds_in_force(make_server: MakeServer, wix: WixMediaClient, mode: str) -> None:
    settings = {"max_batch_items": 3, "max_trash_items": 4, "public_link_max_minutes": 90, "max_upload_bytes": 5000}
    files = [await seed(wix, f"f{n}.png") for n in range(4)]
    async with Client(make_server(**settings), mode=mode) as client:
        schemas = {tool.name: tool.input_schema["properties"] for tool in (await client.list_tools()).tools}
        assert schemas["generate_download_url"]["expiration_minutes"]["maximum"] == 90
        assert schemas["generate_download_url"]["file_ids"]["maxItems"] == 3
        assert schemas["update_file"]["file_ids"]["maxItems"] == 3
        assert schemas["update_file"]["names"]["maxProperties"] == 3
        assert schemas["upload_file"]["paths"]["maxItems"] == 3
        assert schemas["generate_upload_url"]["size_bytes"]["maximum"] == 5000
        assert schemas["move_to_trash"]["file_ids"]["maxItems"] == 4
        assert schemas["restore_from_trash"]["folder_ids"]["maxItems"] == 4
        with anyio.fail_after(WAIT):  # past a bound: one sentence naming the argument and the bound
            text = failure(await client.call_tool("update_file", {"file_ids": files, "labels": ["x"]}))
            assert "file_ids" in text and "3" in text and "pydantic" not in text
            text = failure(await client.call_tool("generate_download_url", {"file_id": files[0],
                                                                            "expiration_minutes": 91}))  # fmt: skip
            assert "expiration_minutes" in text and "90" in text
            ok(await client.call_tool("generate_download_url", {"file_id": files[0], "expiration_minutes": 90}))
