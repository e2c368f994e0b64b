"""A first pass over the tools through the SDK client, in both protocol eras."""

from __future__ import annotations

import pytest
from mcp import Client

from tests.conftest import PNG_16x8
from tests.tool_names import ALL_TOOLS

pytestmark = pytest.mark.anyio


async def test_tools_are_listed(client: Client) -> None:
    names = {tool.name for tool in (await client.list_tools()).tools}
    assert names == ALL_TOOLS


async def test_upload_and_find(client: Client, upload_root: object) -> None:
    from pathlib import Path

    assert isinstance(upload_root, Path)
    (upload_root / "cat.png").write_bytes(PNG_16x8)
    uploaded = await client.call_tool("upload_file", {"path": "cat.png"})
    assert not uploaded.is_error, uploaded.content
    assert uploaded.structured_content is not None
    file_id = uploaded.structured_content["files"][0]["id"]
    found = await client.call_tool("search_files", {"query": "cat"})
    assert found.structured_content is not None
    assert [row[0] for row in found.structured_content["rows"]] == [file_id]
