"""Cursor paging through hundreds of items: nothing lost, nothing twice, filters kept by the cursor."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from media_mcp.library import listing
from media_mcp.library.rows import FileRow
from media_mcp.library.search import page_sql
from media_mcp.library.service import Library
from media_mcp.wix.models import MediaType
from tests.conftest import Api, FakeClock

pytestmark = pytest.mark.anyio


def _seed(library: Library, clock: FakeClock, count: int, folder: str = "media-root") -> set[str]:
    """Add rows straight to the catalog (the upload path has its own tests); half share a timestamp."""
    ids = set()
    for i in range(count):
        if i % 2:
            clock.advance(1)
        row = FileRow(
            id=library.new_file_id(MediaType.DOCUMENT, f"f{i}.txt"),
            display_name=f"file {i % 7} number {i}.txt",
            parent_id=folder,
            root="media",
            state="OK",
            private=bool(i % 3 == 0),
            media_type=MediaType.DOCUMENT.value,
            mime_type="text/plain",
            size=i % 11,
            hash="0" * 32,
            blob=None,
            status="READY",
            created=clock(),
            updated=clock(),
        )
        library.catalog.add_file(row)
        ids.add(row.id)
    return ids


async def _walk(api: Api, method: str, path: str, body: dict[str, Any], key: str, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        if method == "GET":
            params: dict[str, Any] = {**body, "paging.limit": limit}
            if cursor:
                params["paging.cursor"] = cursor
            page = await api.ok("GET", path, params=params)
        else:
            paging: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            page = await api.ok("POST", path, json={**body, "paging": paging})
        assert len(page[key]) <= limit
        seen += [item["id"] for item in page[key]]
        cursor = page["nextCursor"]["cursors"].get("next")
        if not page["nextCursor"]["hasNext"]:
            assert not cursor
            return seen
    raise AssertionError("paging did not end")


@pytest.mark.parametrize(
    "sort",
    [None, {"fieldName": "displayName", "order": "ASC"}, {"fieldName": "sizeInBytes", "order": "DESC"},
     {"fieldName": "updatedDate", "order": "ASC"}],
)  # fmt: skip
async def test_search_pages_through_260_files_exactly_once(api: Api, clock: FakeClock, sort: dict[str, str]) -> None:
    ids = _seed(api.library, clock, 260)
    body: dict[str, Any] = {"sort": sort} if sort else {}
    seen = await _walk(api, "POST", "/files/search", body, "files", 37)
    assert len(seen) == len(set(seen)) == 260
    assert set(seen) == ids


async def test_list_pages_with_a_filter_that_the_cursor_remembers(api: Api, clock: FakeClock) -> None:
    ids = _seed(api.library, clock, 255)
    seen = await _walk(api, "GET", "/files", {"private": "true"}, "files", 20)
    expected = {i for i in ids if api.library.catalog.get_file(i).private}  # type: ignore[union-attr]
    assert len(seen) == len(set(seen)) == len(expected) == 85
    assert set(seen) == expected


async def test_text_search_pages(api: Api, clock: FakeClock) -> None:
    _seed(api.library, clock, 280)
    seen = await _walk(api, "POST", "/files/search", {"search": "file 3"}, "files", 9)
    # every word must appear somewhere in the name: "3" matches "file 3 ..." and "number 13", "number 30", ...
    expected = sum(1 for i in range(280) if "3" in f"file {i % 7} number {i}.txt")
    assert len(seen) == len(set(seen)) == expected


async def test_folders_page(api: Api) -> None:
    created = {await api.folder(f"folder {i:03d}") for i in range(120)}
    seen = await _walk(api, "GET", "/folders", {}, "folders", 50)
    assert len(seen) == len(set(seen)) == 120
    assert set(seen) == created
    by_name = await _walk(api, "POST", "/folders/search", {"sort": {"fieldName": "displayName"}}, "folders", 33)
    assert by_name == sorted(created, key=lambda i: by_name.index(i))
    names = [(await api.ok("GET", f"/folders/{i}"))["folder"]["displayName"] for i in by_name[:5]]
    assert names == sorted(names)


async def test_default_page_size_is_50_and_cursor_from_another_listing_is_refused(api: Api, clock: FakeClock) -> None:
    _seed(api.library, clock, 60)
    first = await api.ok("POST", "/files/search", json={})
    assert len(first["files"]) == 50
    cursor = first["nextCursor"]["cursors"]["next"]
    wrong = await api.call("POST", "/folders/search", json={"paging": {"cursor": cursor}})
    assert wrong.status_code == 400
    assert wrong.json()["details"]["validationError"]["fieldViolations"][0]["field"] == "paging.cursor"
    huge = await api.call("POST", "/files/search", json={"paging": {"cursor": "x" * 16001}})
    assert huge.status_code == 400


def _cursor(field: str, value: Any, kind: str = "files") -> str:
    """A cursor as the library writes one, resuming after ``value`` of the sort field."""
    query = {"k": kind, "s": "parent", "t": "media-root", "f": field, "d": True, "m": [], "p": None, "q": None}
    raw = json.dumps({"q": query, "a": [value, "some-id"]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sizeInBytes", 2**70),
        ("sizeInBytes", -1),
        ("sizeInBytes", "abc"),
        ("sizeInBytes", 1.5),
        ("sizeInBytes", True),
        ("updatedDate", 2**70),
        ("updatedDate", float("inf")),
        ("updatedDate", float("nan")),
        ("updatedDate", "yesterday"),
        ("displayName", 5),
        ("displayName", "x" * 5000),
    ],
)
async def test_cursor_values_must_fit_their_sort_field(asgi_api: Api, field: str, value: Any) -> None:
    response = await asgi_api.call("GET", "/files", params={"paging.cursor": _cursor(field, value)})
    assert response.status_code == 400, response.text
    assert response.json()["details"]["validationError"]["fieldViolations"][0]["field"] == "paging.cursor"


async def test_good_cursor_values_still_page(asgi_api: Api) -> None:
    await asgi_api.upload("a.txt", b"a", "text/plain")
    for field, value in (("sizeInBytes", 2**63 - 1), ("updatedDate", 2e9), ("displayName", "zzz")):
        await asgi_api.ok("GET", "/files", params={"paging.cursor": _cursor(field, value)})
    await asgi_api.ok("GET", "/folders", params={"paging.cursor": _cursor("displayName", "zzz", "folders")})


def test_listing_a_folder_by_size_uses_an_index(library: Library) -> None:
    query = listing.Query(kind="files", scope="parent", target="media-root", sort_field="sizeInBytes", descending=True)
    for after in (None, (10, "some-id")):
        sql, params = page_sql("files", listing.page_of(query, None, after))
        with library.db.read() as conn:
            plan = " ".join(str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "files_parent_size" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
