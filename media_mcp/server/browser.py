"""The media browser: an MCP App (``ui://`` HTML the host shows in a sandboxed frame) over the media tools.

The page (``browser.html``, beside this module) is self-contained: its script and styles are inline, it fetches
nothing, and its thumbnails arrive as image data in tool answers, so its content-security policy declares no
domain at all and no link of any kind sits in it until the person asks for download links (whose lives the guard
bounds as everywhere). It speaks to the host with the MCP Apps messages (``ui/initialize``, tool calls,
``ui/update-model-context``) written here, not with a bundled library.

What holds here, whatever the host does:

- Tools marked for the app alone are left out of ``tools/list`` for a client that did not negotiate MCP Apps, and a
  call to one from such a client is refused: only a host that keeps them from the model may reach them.
- Everything else holds in the guard, as for every tool: the folder scope, link lives, the audit, and the trash's
  confirmation, which for the app is a token of its own kind, bound to the content the person was shown and sent
  only on their click (a model's token does not open for the app, nor the app's for the model).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

from mcp.server.apps import Apps, ResourceCsp, Visibility, client_supports_apps
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.types import CallToolRequestParams, CallToolResult, TextContent

__all__ = ["URI", "BrowserApp", "Visibility", "page", "tool_meta"]

URI = "ui://media-mcp/browser.html"


def page() -> str:
    """The media browser's HTML."""
    return resources.files(__package__).joinpath("browser.html").read_text(encoding="utf-8")


def tool_meta(visibility: Sequence[Visibility] | None) -> dict[str, Any]:
    """The ``_meta`` of a tool that shows the browser: its page, and who may call it (None: the model and the app)."""
    ui: dict[str, Any] = {"resourceUri": URI}
    if visibility is not None:
        ui["visibility"] = list(visibility)
    return {"ui": ui}


class BrowserApp(Apps):
    """The Apps extension with the media browser's page, refusing app-only tools to clients without Apps.

    The tools that show the page are registered with the server's others (their ``_meta`` from `tool_meta`);
    ``app_only`` names those that serve it alone."""

    def __init__(self, app_only: set[str]) -> None:
        super().__init__()
        self.app_only = set(app_only)
        self.add_html_resource(
            URI,
            page(),
            name="media-browser",
            title="Media browser",
            description="Browse, pick and act on the site's media; trash only on the person's click.",
            csp=ResourceCsp(),  # no domain: no fetch, no remote image, script or style
            prefers_border=True,
        )

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if params.name in self.app_only and not client_supports_apps(ctx):
            return CallToolResult(
                content=[TextContent(type="text", text=refusal(params.name))],
                is_error=True,
            )
        return await call_next(ctx)

    def lean_listing(self, result: dict[str, Any], ctx: ServerRequestContext[Any, Any]) -> None:
        """For a client without Apps, a ``tools/list`` answer without the app-only tools, nor the other tools' link
        to a page it cannot show."""
        if client_supports_apps(ctx):
            return
        tools = [t for t in result.get("tools", []) if isinstance(t, dict) and t.get("name") not in self.app_only]
        for tool in tools:
            meta = tool.get("_meta")
            if isinstance(meta, dict):
                meta.pop("ui", None)
                if not meta:
                    del tool["_meta"]
        result["tools"] = tools


def refusal(name: str) -> str:
    return (
        f"{name} serves the media browser only, in a client that shows MCP Apps; "
        "use the other tools (move_to_trash asks the user to confirm)"
    )
