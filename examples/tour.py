"""A five-minute tour of media-mcp as an agent sees it, with no Wix account.

Spawns ``media-mcp`` over stdio (the embedded library, in a temporary data directory), uploads a
picture, finds it, asks to trash it (and shows the confirmation the server demands), confirms,
then restores it. Run: ``.venv/bin/python examples/tour.py``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000010000000080800000000d51d204b"
    "0000000c4944415478da6360181c00000088000174b839670000000049454e44ae426082"
)


def show(title: str, result: Any) -> dict[str, Any]:
    data: dict[str, Any] = result.structured_content or {}
    text = json.dumps(data, indent=2) if data else result.content[0].text
    sys.stdout.write(f"\n== {title}{' (error)' if result.is_error else ''}\n{text}\n")
    return data


async def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="media-mcp-tour-"))
    pictures = work / "pictures"
    pictures.mkdir()
    (pictures / "sunset.png").write_bytes(PNG)
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "MEDIA_MCP_DATA_DIR": str(work / "data"),
        "MEDIA_MCP_LIBRARY_PORT": "0",
        "MEDIA_MCP_UPLOAD_ROOTS": str(pictures),
        "MEDIA_MCP_CONFIRM": "token",  # this script cannot show a form, so the server asks for a token
    }
    server = StdioServerParameters(command=sys.executable, args=["-m", "media_mcp"], env=env)
    async with Client(server, mode="legacy") as client:
        uploaded = show("upload_file", await client.call_tool("upload_file", {"path": "sunset.png"}))
        file_id = uploaded["files"][0]["id"]
        show("search_files", await client.call_tool("search_files", {"query": "sunset"}))
        asked = show("move_to_trash: the server wants confirmation",
                     await client.call_tool("move_to_trash", {"file_ids": [file_id]}))  # fmt: skip
        token = asked["confirmation_token"]
        show("move_to_trash with the token", await client.call_tool(
            "move_to_trash", {"file_ids": [file_id], "confirmation_token": token}))  # fmt: skip
        show("search the trash", await client.call_tool("search_files", {"root": "TRASH_ROOT"}))
        show("restore_from_trash", await client.call_tool("restore_from_trash", {"file_ids": [file_id]}))
        show("get_file", await client.call_tool("get_file", {"file_id": file_id}))
    sys.stdout.write(f"\nAll done. The tour's data is in {work}\n")


if __name__ == "__main__":
    anyio.run(main)
