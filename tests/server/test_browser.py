"""The media browser (MCP Apps) through the SDK client, in both protocol eras: what a client with Apps and one without
are offered, the page's resource and its frame, browsing, thumbnails, and the trash confirmed by the person's click.

The page itself runs in a real browser in ``test_browser_app.py``.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import TextResourceContents
from PIL import Image

from media_mcp.server.browser import URI
from media_mcp.wix.client import WixMediaClient
from tests.server.conftest import MakeServer, ShowsApps, audit_lines
from tests.server.test_guardrails import bounded, data, put, refusal, text_of, trashed, wix

__all__ = ["wix"]  # the guardrail tests' adapter fixture

pytestmark = pytest.mark.anyio

APP_ONLY = {"browse_media", "browser_thumbnails", "browser_trash"}


@pytest.fixture
async def apps(make_server: MakeServer, mode: str) -> AsyncIterator[Client]:
    """A client that renders MCP Apps, on a server with default settings."""
    async with Client(make_server(), mode=mode, extensions=[ShowsApps()]) as session:
        yield session


async def beach(wix: WixMediaClient, tmp_path: Path) -> dict[str, Any]:
    trips = (await wix.create_folder("Trips")).id
    inner = (await wix.create_folder("Beach", trips)).id
    files = [await put(wix, tmp_path, f"sand-{n}.png", folder=inner) for n in range(3)]
    private = await put(wix, tmp_path, "passport.png", folder=inner, private=True)
    return {"trips": trips, "beach": inner, "files": files, "private": private}


# --- what each client is offered ------------------------------------------------------------------------


@bounded
async def test_a_client_without_apps_sees_no_app_only_tool_and_cannot_call_one(
    client: Client, wix: WixMediaClient, tmp_path: Path
) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert not APP_ONLY & set(tools)
    assert tools["get_folder"].meta is None  # no page to show
    assert "media browser only" in refusal(await client.call_tool("browse_media", {}))
    site = await beach(wix, tmp_path)
    result = await client.call_tool("browser_trash", {"file_ids": site["files"][:1]})
    assert "media browser only" in refusal(result)
    result = await client.call_tool("browser_thumbnails", {"file_ids": site["files"][:1]})
    assert "media browser only" in refusal(result)
    assert not await trashed(wix, site["files"][0])


@bounded
async def test_a_client_with_apps_is_offered_the_app_only_tools_marked_for_the_app(apps: Client, mode: str) -> None:
    if mode == "auto":  # the 2025-11-25 handshake has no field for extensions: there the tools' _meta says it
        assert (apps.server_capabilities.extensions or {}).keys() == {"io.modelcontextprotocol/ui"}
    tools = {t.name: t for t in (await apps.list_tools()).tools}
    for name in APP_ONLY:
        assert (tools[name].meta or {})["ui"] == {"resourceUri": URI, "visibility": ["app"]}, name
    assert (tools["get_folder"].meta or {})["ui"] == {"resourceUri": URI}  # opens the browser, for model and app
    hints = tools["browser_trash"].annotations
    assert hints is not None and not hints.read_only_hint and hints.destructive_hint is not False


@bounded
async def test_the_page_is_self_contained_and_its_frame_declares_no_domain(apps: Client) -> None:
    resource = (await apps.read_resource(URI)).contents[0]
    assert isinstance(resource, TextResourceContents)
    assert resource.mime_type == "text/html;profile=mcp-app"
    assert (resource.meta or {})["ui"]["csp"] == {}
    html = resource.text
    assert "<script>" in html and "ui/initialize" in html
    # nothing fetched: no remote script, style, image, font or frame, and no network call from the script
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html, re.IGNORECASE)
    assert not re.search(r"\b(fetch|XMLHttpRequest|WebSocket|EventSource|importScripts)\s*\(", html)
    assert "<link" not in html and "@import" not in html and "<iframe" not in html
    assert "innerHTML" not in html  # names are user data: the page sets text, never markup


# --- browsing --------------------------------------------------------------------------------------------


@bounded
async def test_browse_opens_a_folder_with_its_trail_subfolders_and_files(
    apps: Client, wix: WixMediaClient, tmp_path: Path
) -> None:
    site = await beach(wix, tmp_path)
    top = data(await apps.call_tool("browse_media", {}))
    assert top["place"] == "folder" and top["trail"] == [{"id": "media-root", "name": "Media"}]
    assert {"id": site["trips"], "name": "Trips"} in top["folders"]
    trips = data(await apps.call_tool("browse_media", {"folder_id": site["trips"]}))
    assert [f["name"] for f in trips["folders"]] == ["Beach"]
    inner = data(await apps.call_tool("browse_media", {"folder_id": site["beach"]}))
    assert [c["name"] for c in inner["trail"]] == ["Media", "Trips", "Beach"]
    columns = inner["files"]["columns"]
    rows = [dict(zip(columns, row, strict=True)) for row in inner["files"]["rows"]]
    assert sorted(r["name"] for r in rows) == ["passport.png", "sand-0.png", "sand-1.png", "sand-2.png"]
    assert [r["name"] for r in rows if r["private"]] == ["passport.png"]
    assert inner["writable"] is True and "Beach" in inner["message"]


@bounded
async def test_browse_pages_files_with_a_sealed_cursor(apps: Client, wix: WixMediaClient, tmp_path: Path) -> None:
    site = await beach(wix, tmp_path)
    for n in range(40):  # more than a page
        await put(wix, tmp_path, f"shell-{n}.png", folder=site["beach"])
    first = data(await apps.call_tool("browse_media", {"folder_id": site["beach"]}))
    cursor = first["files"]["next_cursor"]
    assert cursor and "More files follow" in first["message"]
    rest = data(await apps.call_tool("browse_media", {"folder_id": site["beach"], "cursor": cursor}))
    assert rest["folders"] == [] and len(first["files"]["rows"]) == 40 and len(rest["files"]["rows"]) == 4
    other = await apps.call_tool("browse_media", {"folder_id": site["trips"], "cursor": cursor})
    assert "drop the cursor" in refusal(other)


@bounded
async def test_browse_shows_the_trash(apps: Client, wix: WixMediaClient, tmp_path: Path) -> None:
    site = await beach(wix, tmp_path)
    await wix.bulk_delete_files(site["files"][:2])
    view = data(await apps.call_tool("browse_media", {"trash": True}))
    assert view["place"] == "trash" and view["trail"] == []
    assert sorted(row[0] for row in view["files"]["rows"]) == sorted(site["files"][:2])
    both = await apps.call_tool("browse_media", {"trash": True, "folder_id": site["beach"]})
    assert "not both" in refusal(both)


@bounded
async def test_under_a_scope_the_browser_starts_at_its_root_and_reaches_nothing_outside(
    make_server: MakeServer, mode: str, wix: WixMediaClient, tmp_path: Path
) -> None:
    site = await beach(wix, tmp_path)
    outside = await put(wix, tmp_path, "OUTSIDE.png")
    server = make_server(allowed_folders=site["beach"])
    async with Client(server, mode=mode, extensions=[ShowsApps()]) as scoped:
        view = data(await scoped.call_tool("browse_media", {}))
        assert view["trail"] == [{"id": site["beach"], "name": "Beach"}]  # nothing above the scope's root
        assert "not found" in refusal(await scoped.call_tool("browse_media", {"folder_id": site["trips"]}))
        assert "outside" in refusal(await scoped.call_tool("browse_media", {"trash": True}))
        thumbs = data(await scoped.call_tool("browser_thumbnails", {"file_ids": [outside, site["files"][0]]}))
        by_id = {t["id"]: t for t in thumbs["thumbnails"]}
        assert by_id[outside] == {"id": outside, "note": "not found"}
        assert by_id[site["files"][0]]["src"].startswith("data:image/jpeg;base64,")
        preview = data(await scoped.call_tool("browser_trash", {"file_ids": [outside], "folder_ids": [site["beach"]]}))
        assert {i["id"]: i["status"] for i in preview["items"]} == {outside: "not_found", site["beach"]: "refused"}
        assert "OUTSIDE" not in text_of(await scoped.call_tool("browse_media", {}))


# --- thumbnails ------------------------------------------------------------------------------------------


@bounded
async def test_thumbnails_are_small_jpeg_data_and_private_ones_leave_no_link(
    apps: Client, wix: WixMediaClient, tmp_path: Path, server_dir: Path
) -> None:
    site = await beach(wix, tmp_path)
    ids = [*site["files"], site["private"], "no-such-file"]
    answer = data(await apps.call_tool("browser_thumbnails", {"file_ids": ids}))
    by_id = {t["id"]: t for t in answer["thumbnails"]}
    assert by_id["no-such-file"] == {"id": "no-such-file", "note": "not found"}
    for file_id in [*site["files"], site["private"]]:
        src = by_id[file_id]["src"]
        assert src.startswith("data:image/jpeg;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.format == "JPEG" and max(image.size) <= 160
    assert "http" not in str(answer)
    minted = [json.loads(line) for line in audit_lines(server_dir) if site["private"] in line]
    assert [(m["outcome"], m["link_minutes"]) for m in minted] == [("minted", 1)]  # a one-minute link, audited
    too_many = await apps.call_tool("browser_thumbnails", {"file_ids": [f"id-{n}" for n in range(13)]})
    assert too_many.is_error


# --- trash by the person's click -------------------------------------------------------------------------


@bounded
async def test_trash_from_the_browser_previews_then_acts_only_on_its_token(
    apps: Client, wix: WixMediaClient, tmp_path: Path, server_dir: Path
) -> None:
    site = await beach(wix, tmp_path)
    picked = {"file_ids": site["files"][:2]}
    preview = data(await apps.call_tool("browser_trash", picked))
    assert preview["status"] == "confirmation_required" and preview["content"]["files"] == 2
    assert not await trashed(wix, site["files"][0])
    done = data(await apps.call_tool("browser_trash", picked | {"confirmation_token": preview["confirmation_token"]}))
    assert done["status"] == "done" and done["undo"]["file_ids"] == site["files"][:2]
    assert [await trashed(wix, f) for f in site["files"]] == [True, True, False]
    again = await apps.call_tool("browser_trash", picked | {"confirmation_token": preview["confirmation_token"]})
    assert again.is_error or data(again)["status"] == "nothing_to_do"
    assert any(json.loads(line).get("confirmed_by") == "app" for line in audit_lines(server_dir))


@bounded
async def test_a_declined_trash_changes_nothing(apps: Client, wix: WixMediaClient, tmp_path: Path) -> None:
    site = await beach(wix, tmp_path)
    data(await apps.call_tool("browser_trash", {"file_ids": site["files"][:2]}))  # the person clicks Cancel
    assert [await trashed(wix, f) for f in site["files"]] == [False, False, False]


@bounded
async def test_trash_from_the_browser_refuses_a_changed_content(
    apps: Client, wix: WixMediaClient, tmp_path: Path
) -> None:
    site = await beach(wix, tmp_path)
    picked = {"folder_ids": [site["beach"]]}
    preview = data(await apps.call_tool("browser_trash", picked))
    assert preview["content"] == preview["content"] | {"files": 4, "folders": 1, "private_files": 1}
    late = await put(wix, tmp_path, "late.png", folder=site["beach"])
    changed = data(
        await apps.call_tool("browser_trash", picked | {"confirmation_token": preview["confirmation_token"]})
    )
    assert changed["status"] == "changed" and changed["content"]["files"] == 5
    assert not await trashed(wix, late)


@bounded
async def test_the_browsers_tokens_and_the_models_never_open_for_each_other(
    make_server: MakeServer, mode: str, wix: WixMediaClient, tmp_path: Path
) -> None:
    site = await beach(wix, tmp_path)
    picked = {"file_ids": site["files"][:1]}
    async with Client(make_server(confirm="token"), mode=mode, extensions=[ShowsApps()]) as both:
        model_token = data(await both.call_tool("move_to_trash", picked))["confirmation_token"]
        app_token = data(await both.call_tool("browser_trash", picked))["confirmation_token"]
        assert "confirmation_token" in refusal(
            await both.call_tool("browser_trash", picked | {"confirmation_token": model_token})
        )
        assert "confirmation_token" in refusal(
            await both.call_tool("move_to_trash", picked | {"confirmation_token": app_token})
        )
        assert not await trashed(wix, site["files"][0])


@pytest.mark.parametrize("confirm", ["allow", "auto", "token"])
@bounded
async def test_the_browser_always_asks_the_person_first(
    make_server: MakeServer, mode: str, wix: WixMediaClient, tmp_path: Path, confirm: str
) -> None:
    site = await beach(wix, tmp_path)
    async with Client(make_server(confirm=confirm), mode=mode, extensions=[ShowsApps()]) as session:
        preview = data(await session.call_tool("browser_trash", {"file_ids": site["files"][:1]}))
        assert preview["status"] == "confirmation_required"
        assert not await trashed(wix, site["files"][0])


@bounded
async def test_a_server_that_blocks_the_trash_blocks_it_in_the_browser(
    make_server: MakeServer, mode: str, wix: WixMediaClient, tmp_path: Path
) -> None:
    site = await beach(wix, tmp_path)
    async with Client(make_server(confirm="block"), mode=mode, extensions=[ShowsApps()]) as session:
        assert "block" in refusal(await session.call_tool("browser_trash", {"file_ids": site["files"][:1]}))
        assert not await trashed(wix, site["files"][0])


@bounded
async def test_a_read_only_server_offers_browsing_but_no_trash(
    make_server: MakeServer, mode: str, wix: WixMediaClient, tmp_path: Path
) -> None:
    site = await beach(wix, tmp_path)
    async with Client(make_server(read_only=True), mode=mode, extensions=[ShowsApps()]) as session:
        names = {t.name for t in (await session.list_tools()).tools}
        assert {"browse_media", "browser_thumbnails"} <= names and "browser_trash" not in names
        view = data(await session.call_tool("browse_media", {"folder_id": site["beach"]}))
        assert view["writable"] is False
