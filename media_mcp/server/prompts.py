"""MCP prompts written as markdown files with a small front matter (name, title, description, arguments)."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import Prompt, PromptArgument, UserMessage
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS


@dataclass
class PromptFile:
    name: str
    title: str
    description: str
    body: str
    arguments: list[PromptArgument] = field(default_factory=list)


class PromptFormatError(ValueError):
    pass


def prompt_dirs() -> list[Path]:
    """Packaged prompts first (a wheel), then the source tree's ``prompts/``."""
    here = Path(__file__).resolve().parent.parent
    return [p for p in (here / "prompts", here.parent / "prompts") if p.is_dir()]


def parse(text: str, source: str) -> PromptFile:
    """Front matter between ``---`` lines: ``key: value`` pairs and an ``arguments:`` list of mappings."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---" or "---" not in (line.strip() for line in lines[1:]):
        raise PromptFormatError(f"{source}: missing front matter")
    end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
    meta: dict[str, str] = {}
    arguments: list[dict[str, str]] = []
    in_arguments = False
    for raw in lines[1:end]:
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if in_arguments and raw.startswith(" "):
            item = raw.strip()
            if item.startswith("- "):
                arguments.append({})
                item = item[2:]
            if not arguments:
                raise PromptFormatError(f"{source}: argument fields before '- name:'")
            key, _, value = item.partition(":")
            arguments[-1][key.strip()] = value.strip()
            continue
        key, _, value = raw.partition(":")
        in_arguments = key.strip() == "arguments"
        if not in_arguments:
            meta[key.strip()] = value.strip()
    for required in ("name", "description"):
        if not meta.get(required):
            raise PromptFormatError(f"{source}: front matter needs {required!r}")
    body = "\n".join(lines[end + 1 :]).strip()
    args = [
        PromptArgument(
            name=a["name"], description=a.get("description", ""), required=a.get("required", "false").lower() == "true"
        )
        for a in arguments
    ]
    declared = {a.name for a in args}
    used = {f for _, f, _, _ in string.Formatter().parse(body) if f}
    if used - declared:
        raise PromptFormatError(f"{source}: body uses undeclared arguments {sorted(used - declared)}")
    return PromptFile(meta["name"], meta.get("title", meta["name"]), meta["description"], body, args)


def load(mcp: MCPServer, dirs: list[Path] | None = None) -> list[str]:
    """Register every ``*.md`` prompt found; returns their names."""
    names: list[str] = []
    seen: set[str] = set()
    for directory in dirs if dirs is not None else prompt_dirs():
        for path in sorted(directory.glob("*.md")):
            spec = parse(path.read_text(encoding="utf-8"), path.name)
            if spec.name in seen:
                continue
            seen.add(spec.name)
            mcp.add_prompt(_prompt(spec))
            names.append(spec.name)
    return names


class MarkdownPrompt(Prompt):
    """A prompt that names its missing arguments as invalid params.

    The SDK raises a ValueError there, which modern (2026-07-28) connections turn into a bare
    "Internal server error"; an MCPError reaches the client unchanged in both protocol eras.
    """

    async def render(self, arguments: dict[str, Any] | None, context: Any) -> Any:
        missing = [a.name for a in self.arguments or [] if a.required and a.name not in (arguments or {})]
        if missing:
            raise MCPError(INVALID_PARAMS, f"prompt {self.name!r} needs the argument(s): {', '.join(missing)}")
        return await super().render(arguments, context)


def _prompt(spec: PromptFile) -> Prompt:
    optional = {a.name for a in spec.arguments if not a.required}

    def render(**kwargs: str) -> list[UserMessage]:
        values = {name: "" for name in optional} | {k: str(v) for k, v in kwargs.items()}
        return [UserMessage(spec.body.format(**values))]

    return MarkdownPrompt(
        name=spec.name, title=spec.title, description=spec.description, arguments=spec.arguments, fn=render
    )
