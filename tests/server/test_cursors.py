"""Search cursors through the SDK client: what a cursor, and whether there is one, tells an agent.

- A cursor is opaque in content: the backend's position inside it (the embedded library's names the sort value and
  id of a row, often one outside the folder scope) is encrypted, so nothing about an outside item can be read from it.
- Under a scope, whether a page has a cursor depends only on the items the agent may see: a page has one exactly
  when an admitted item follows, and following the cursors lists every admitted item once, in order, whatever lies
  between them in the backend's pages.
- A recursive listing resumed after its folder tree shrank goes on from where it was, or ends, cleanly.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from media_mcp.guard.seal import MAX_CURSOR_CHARS
from media_mcp.wix import messages as msg
from media_mcp.wix.client import WixMediaClient
from tests.conftest import FakeClock, PNG_16x8
from tests.server.conftest import MakeServer
from tests.server.test_guardrails import bounded, data, put, wix

__all__ = ["wix"]  # the fixture with an offline import source, shared with the guardrail tests

pytestmark = pytest.mark.anyio

Json = dict[str, Any]


def readable(text: bytes, depth: int = 3) -> bytes:
    """All anyone without the server's key can read in a cursor: its text, its base64 runs decoded, and the runs in
    those, a few layers down (a backend's cursor inside ours is base64 too)."""
    found = text
    for run in re.findall(rb"[A-Za-z0-9_-]{8,}", text) if depth else []:
        try:
            found += b"\n" + readable(base64.urlsafe_b64decode(run + b"=" * (-len(run) % 4)), depth - 1)
        except ValueError:  # not base64 after all
            continue
    return found


def listed(page: Json) -> list[str]:
    """The ids on a page of search_files (its rows) or search_folders."""
    if "rows" in page:
        return [row[0] for row in page["rows"]]
    return [folder["id"] for folder in page["folders"]]


async def follow(client: Client, tool: str, args: Json, cursor: str | None = None) -> list[Json]:
    """Every page of a search, from the first (or from ``cursor``) to the one without a next_cursor."""
    pages: list[Json] = []
    for _ in range(500):
        page = data(await client.call_tool(tool, args | ({"cursor": cursor} if cursor else {})))
        pages.append(page)
        cursor = page.get("next_cursor")
        if not cursor:
            return pages
    raise AssertionError(f"{tool} {args}: the cursors never ended")


def check_paging(pages: list[Json], limit: int, expected: list[str], hidden: Collection[str]) -> None:
    """Every expected item once, in order; every page full but the last, which is not empty and has no cursor; and
    no cursor in which anything hidden can be read."""
    assert [item for page in pages for item in listed(page)] == expected
    assert [len(listed(page)) for page in pages[:-1]] == [limit] * (len(pages) - 1)
    assert listed(pages[-1]) and "next_cursor" not in pages[-1]
    for page in pages[:-1]:
        cursor: str = page["next_cursor"]
        plain = readable(cursor.encode()).lower()
        assert not [h for h in hidden if h.lower().encode() in plain], cursor
        assert len(cursor) <= MAX_CURSOR_CHARS // 4


# --- under a scope: pages, cursors and what lies between them ----------------------------------------


@bounded
async def test_folder_pages_under_a_scope_list_each_inside_folder_once_across_long_outside_runs(
    make_server: MakeServer, mode: str, wix: WixMediaClient, clock: FakeClock
) -> None:
    # newest first (search_folders' order); inside folders clustered at the backend's page edges (100 rows under a
    # scope) and apart by more than a backend page of outside ones
    top = (await wix.create_folder("shelf")).id
    clock.advance(1)
    elsewhere = (await wix.create_folder("elsewhere")).id
    inside_at = {0, 1, 2, 55, 97, 98, 99, 100, 101, 102, 230, 299}
    made: list[tuple[str, bool]] = []
    for n in range(300):
        clock.advance(1)
        inside = n in inside_at
        folder = await wix.create_folder(f"shelf-{n}" if inside else f"hidden-{n}", top if inside else elsewhere)
        made.append((folder.id, inside))
    expected = [ident for ident, inside in reversed(made) if inside] + [top]
    hidden = {ident for ident, inside in made if not inside} | {elsewhere} | {f"hidden-{n}" for n in range(300)}
    async with Client(make_server(allowed_folders=top), mode=mode) as scoped:
        for limit in (1, 2, 3, 5):
            pages = await follow(scoped, "search_folders", {"limit": limit})
            check_paging(pages, limit, expected, hidden)


@bounded
async def test_only_a_run_of_outside_matches_longer_than_the_scan_budget_shows_in_a_cursor(
    make_server: MakeServer, mode: str, wix: WixMediaClient, clock: FakeClock
) -> None:
    # the one signal left, as `GuardBase._page` states it: a call reads at most 5 backend pages (500 rows under a
    # scope), and one that stops there answers a cursor to where it stopped, whatever follows
    elsewhere = (await wix.create_folder("elsewhere")).id
    for n in range(600):  # older than the inside folders, so after them in search_folders' order
        clock.advance(1)
        await wix.create_folder(f"{'kept' if n % 2 else 'lost'}-run-{n}", elsewhere)
    clock.advance(1)
    top = (await wix.create_folder("kept-top")).id
    clock.advance(1)
    newest = (await wix.create_folder("kept-new", top)).id
    async with Client(make_server(allowed_folders=top), mode=mode) as scoped:
        within_budget = await follow(scoped, "search_folders", {"query": "kept", "limit": 2})  # 300 outside
        past_budget = await follow(scoped, "search_folders", {"limit": 2})  # 601 outside
    assert [listed(page) for page in within_budget] == [[newest, top]]
    assert [listed(page) for page in past_budget] == [[newest, top], []]


@bounded
async def test_file_pages_under_a_scope_list_each_inside_file_once_in_either_order(
    make_server: MakeServer, mode: str, wix: WixMediaClient, tmp_path: Path
) -> None:
    inside = (await wix.create_folder("desk")).id
    outside = (await wix.create_folder("vault")).id
    inside_at = {0, 1, 37, 98, 99, 100, 104}
    names = {n: f"report-{n:03}.png" if n in inside_at else f"report-{n:03}-secret.png" for n in range(105)}
    ids = {n: await put(wix, tmp_path, name, folder=inside if n in inside_at else outside) for n, name in names.items()}
    ascending = [ids[n] for n in sorted(inside_at)]
    hidden = {names[n] for n in names if n not in inside_at} | {ids[n] for n in ids if n not in inside_at}
    async with Client(make_server(allowed_folders=inside), mode=mode) as scoped:
        for order, expected in (("asc", ascending), ("desc", ascending[::-1])):
            for limit in (1, 2, 3):
                args = {"query": "report", "sort_by": "name", "sort_order": order, "limit": limit}
                check_paging(await follow(scoped, "search_files", args), limit, expected, hidden)


@bounded
async def test_whether_a_page_has_a_cursor_says_nothing_of_outside_matches(
    make_server: MakeServer, mode: str, wix: WixMediaClient, tmp_path: Path
) -> None:
    inside = (await wix.create_folder("team")).id
    outside = (await wix.create_folder("board")).id
    plan = await put(wix, tmp_path, "layoffs-plan.png", folder=inside)
    await put(wix, tmp_path, "holiday.png", folder=inside)
    await wix.create_folder("layoffs-notes", inside)
    outside_files = [
        await put(wix, tmp_path, name, folder=outside)
        for name in ("layoffs-early.png", "layoffs-zeta.png", "merger-1.png", "merger-2.png", "merger-3.png")
    ]
    outside_folders = [(await wix.create_folder(name, outside)).id for name in ("merger-deals", "layoffs-zz")]
    asks: list[tuple[str, Json]] = [
        ("search_files", {"query": "merger", "limit": 1}),
        ("search_files", {"query": "layoffs", "limit": 1}),
        ("search_files", {"query": "layoffs", "limit": 1, "sort_by": "name", "sort_order": "asc"}),
        ("search_files", {"query": "layoffs", "limit": 1, "sort_by": "name", "sort_order": "desc"}),
        ("search_files", {"query": "layoffs", "limit": 1, "sort_by": "size"}),
        ("search_folders", {"query": "merger", "limit": 1}),
        ("search_folders", {"query": "layoffs", "limit": 1}),
    ]
    async with Client(make_server(allowed_folders=inside), mode=mode) as scoped:
        with_outside = [data(await scoped.call_tool(tool, args)) for tool, args in asks]
        await wix.bulk_delete_files(outside_files)  # to the trash: no longer in any search here
        await wix.bulk_delete_folders(outside_folders)
        without_outside = [data(await scoped.call_tool(tool, args)) for tool, args in asks]
    assert with_outside == without_outside
    assert [(listed(page), "next_cursor" in page) for page in with_outside[:5]] == [
        ([], False),
        ([plan], False),
        ([plan], False),
        ([plan], False),
        ([plan], False),
    ]


# --- a recursive listing whose tree changed --------------------------------------------------------------------


@bounded
async def test_a_recursive_listing_goes_on_after_its_folder_tree_shrank(
    client: Client, wix: WixMediaClient, tmp_path: Path
) -> None:
    # the tree is walked in id order, and ids are random: a top whose id sorts low, then subfolders until one sorts
    # after it (each try succeeds with odds of at least 3 in 4, so the bounds below are never reached)
    top = "f"
    for n in range(60):
        top = (await wix.create_folder(f"tree-{n}")).id
        if top < "c":
            break
    subs: list[str] = []
    for n in range(60):
        subs.append((await wix.create_folder(f"branch-{n}", top)).id)
        if len(subs) > 1 and max(subs) > top:
            break
    last = max(subs)
    earlier = min(subs)
    assert top < last and earlier != last
    files = {
        top: [await put(wix, tmp_path, "trunk.png", folder=top)],
        earlier: [await put(wix, tmp_path, "early.png", folder=earlier)],
        last: [await put(wix, tmp_path, f"leaf-{n}.png", folder=last) for n in range(2)],
    }
    args: Json = {"folder_id": top, "recursive": True, "limit": 1}

    async def into_last() -> tuple[list[str], str]:
        """The files listed up to the first of ``last``'s, and the cursor then, which stands inside ``last``."""
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(10):
            page = data(await client.call_tool("search_files", args | ({"cursor": cursor} if cursor else {})))
            seen += listed(page)
            cursor = page.get("next_cursor")
            if seen and seen[-1] in files[last]:
                assert cursor, "the other file of the folder follows"
                return seen, cursor
        raise AssertionError("the listing never reached the last folder")

    # a folder it had passed leaves the tree: the listing goes on inside the folder it had reached
    seen, cursor = await into_last()
    await wix.update_folder(msg.FolderUpdate(id=earlier, parent_folder_id="media-root"))
    rest = [item for page in await follow(client, "search_files", args, cursor) for item in listed(page)]
    assert sorted(seen + rest) == sorted(files[top] + files[earlier] + files[last])

    # the folder it had reached leaves the tree (to the trash): what remains after it, and nothing again
    seen, cursor = await into_last()
    await wix.bulk_delete_folders([last])
    pages = await follow(client, "search_files", args, cursor)
    rest = [item for page in pages for item in listed(page)]
    assert not set(rest) & set(seen) and not set(rest) & set(files[last])
    assert set(seen + rest) == set(files[top]) | {seen[-1]}


# --- pages while the site changes ----------------------------------------------------------------------------


CHANGES = ["an-item-shown-is-trashed", "an-outside-item-before-goes", "an-upload-elsewhere", "a-smaller-limit"]


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("scoped", [True, False], ids=["scope", "no-scope"])
@bounded
async def test_a_change_between_pages_neither_skips_nor_repeats_an_item(
    make_server: MakeServer, mode: str, wix: WixMediaClient, tmp_path: Path, clock: FakeClock, change: str,
    scoped: bool,
) -> None:  # fmt: skip
    """The cursor resumes at the item it points at (by id), not at a row count the change has moved."""
    top = (await wix.create_folder("top")).id
    elsewhere = (await wix.create_folder("elsewhere")).id
    early = await put(wix, tmp_path, "aaa-elsewhere.png", folder=elsewhere)  # sorts first by name
    mine: dict[str, str] = {}
    for name in ("b.png", "c.png", "d.png", "e.png", "f.png"):
        clock.advance(1)
        mine[name] = await put(wix, tmp_path, name, folder=top)
    by_name = {"sort_by": "name", "sort_order": "asc"}
    args: Json = {"limit": 2, **(by_name if change != "an-upload-elsewhere" else {})}  # else newest first
    if not scoped:
        args["folder_id"] = top
        args["query"] = "png"  # a search over the site, kept to the folder: rows held back as under a scope
    server = make_server(allowed_folders=top) if scoped else make_server()
    async with Client(server, mode=mode) as client:
        first = data(await client.call_tool("search_files", args))
        if change == "an-item-shown-is-trashed":
            await wix.bulk_delete_files([mine[listed_names(first)[0]]])
        elif change == "an-outside-item-before-goes":
            await wix.bulk_delete_files([early])
        elif change == "an-upload-elsewhere":
            clock.advance(1)
            await put(wix, tmp_path, "newest-elsewhere.png", folder=elsewhere)
        rest = await follow(client, "search_files", args | ({"limit": 1} if change == "a-smaller-limit" else {}),
                            first["next_cursor"])  # fmt: skip
    seen = listed_names(first) + [name for page in rest for name in listed_names(page)]
    expected = sorted(mine) if by_name.items() <= args.items() else sorted(mine, reverse=True)
    assert seen == expected, seen


def listed_names(page: Json) -> list[str]:
    return [row[1] for row in page["rows"]]


@bounded
async def test_a_recursive_listing_sorted_by_size_is_sorted_across_the_tree(
    client: Client, wix: WixMediaClient, tmp_path: Path
) -> None:
    top = (await wix.create_folder("top")).id
    deep = (await wix.create_folder("deep", (await wix.create_folder("mid", top)).id)).id
    sizes = {"small.png": 10, "large.png": 5000, "medium.png": 300}
    for (name, size), folder in zip(sizes.items(), (top, deep, top), strict=True):
        await put(wix, tmp_path, name, folder=folder, content=PNG_16x8 + b"\x00" * size)  # a PNG with a tail
    pages = await follow(client, "search_files", {"folder_id": top, "recursive": True, "sort_by": "size", "limit": 1})
    assert [name for page in pages for name in listed_names(page)] == ["large.png", "medium.png", "small.png"]


@bounded
async def test_a_small_tree_sorted_across_a_large_site_comes_in_one_call(
    client: Client, wix: WixMediaClient, tmp_path: Path
) -> None:
    """Sorted across a tree, a listing is a search of the site kept to the tree: the guard reads the site's rows a
    hundred at a time, so a few files among hundreds still come in one call, not one page of empties after another."""
    top = (await wix.create_folder("top")).id
    deep = (await wix.create_folder("deep", top)).id
    for n in range(240):
        await put(wix, tmp_path, f"elsewhere-{n:03}.png")
    for name, folder in (("one.png", top), ("two.png", deep)):
        await put(wix, tmp_path, name, folder=folder)
    page = data(await client.call_tool("search_files", {"folder_id": top, "recursive": True, "sort_by": "name",
                                                        "sort_order": "asc", "limit": 20}))  # fmt: skip
    assert listed_names(page) == ["one.png", "two.png"] and "next_cursor" not in page
