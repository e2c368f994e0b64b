"""The server's instructions say the mode it runs in: read-only, folder scope, and how trashing is confirmed."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from tests.server.conftest import MakeServer

pytestmark = pytest.mark.anyio


async def instructions_of(make_server: MakeServer, mode: str, **settings: Any) -> str:
    async with Client(make_server(**settings), mode=mode) as client:
        text = client.instructions
    assert text
    return text


@pytest.mark.parametrize(
    ("confirm", "says"),
    [
        ("auto", "the server asks them with the exact list; otherwise the first call returns a preview and a "),
        ("token", "Moving to the trash takes two calls"),
        ("block", "This server does not move anything to the trash"),
        ("allow", "Moving to the trash happens at once, without asking the user"),
    ],
)
async def test_the_confirmation_mode_is_stated(make_server: MakeServer, mode: str, confirm: str, says: str) -> None:
    text = await instructions_of(make_server, mode, confirm=confirm)
    assert says in text
    assert ("confirmation_token" in text) == (confirm in ("auto", "token"))
    assert "read-only" not in text and "limited to some folders" not in text and "Permanent deletion" not in text


async def test_permanent_deletion_is_stated_when_offered(make_server: MakeServer, mode: str) -> None:
    text = await instructions_of(make_server, mode, confirm="allow", allow_permanent_delete=True)
    assert "happens at once" in text
    assert "Permanent deletion (move_to_trash with permanent=true) is offered; it cannot be undone" in text


async def test_read_only_says_so_and_nothing_of_confirmation(make_server: MakeServer, mode: str) -> None:
    text = await instructions_of(make_server, mode, read_only=True, allowed_folders="media-root")
    assert "This server is read-only" in text and "limited to some folders" in text
    assert "confirmation_token" not in text and "Moving to the trash" not in text
