"""Tool arguments through the SDK client, for every registered tool, in both protocol eras.

An argument a tool does not take is refused by name (with the names it does take) before anything runs; an invalid
value is answered with one sentence naming the argument and what it allows, read from the tool's input schema; and a
string argument refuses the empty string exactly where its schema says ``minLength``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent, Tool

from tests.server.conftest import MakeServer, audit_lines

pytestmark = pytest.mark.anyio

UNKNOWN = "no_such_argument"
SDK_NOISE = ("pydantic", "http", "validation error", "input_value", "type=", "input should")


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def refusal(result: CallToolResult, tool: str) -> str:
    """The sentence of a refused call, after the SDK's prefix; checked to be one short line without SDK noise."""
    assert result.is_error
    text = text_of(result)
    prefix = f"Error executing tool {tool}: "
    assert text.startswith(prefix), text
    sentence = text.removeprefix(prefix)
    assert "\n" not in sentence and len(sentence) < 700, sentence
    assert not any(noise in sentence.lower() for noise in SDK_NOISE), sentence
    return sentence


def resolve(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        return {**schema["$defs"][ref.rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def kind_of(node: dict[str, Any]) -> str | None:
    kind = node.get("type")
    if isinstance(kind, list):
        return next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def valid(node: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A value the schema allows (used to fill the arguments not under test)."""
    node = resolve(node, schema)
    if "enum" in node:
        return next(v for v in node["enum"] if v is not None)
    kind = kind_of(node)
    if kind == "string":
        return "x" * max(node.get("minLength", 1), 1)
    if kind in ("integer", "number"):
        return node.get("minimum", 1)
    if kind == "boolean":
        return False
    if kind == "array":
        return [valid(node["items"], schema)] * node.get("minItems", 0)
    if kind == "object":
        return {}
    raise AssertionError(f"no valid value for {node}")


def required_of(tool: Tool) -> dict[str, Any]:
    schema = tool.input_schema
    return {name: valid(schema["properties"][name], schema) for name in schema.get("required", [])}


def invalid_values(node: dict[str, Any], schema: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(what is wrong, a value) for each way the schema lets a value be wrong: type, range, empty, length, choice."""
    node = resolve(node, schema)
    kind = kind_of(node)
    if "enum" in node:
        yield "choice", "NOT_A_CHOICE"
    wrong_type = {"string": 12345, "integer": "twelve", "number": "twelve", "boolean": "maybe", "array": 12345}
    if kind in wrong_type:
        yield "type", wrong_type[kind]
    if "minimum" in node:
        yield "range", node["minimum"] - 1
    if "maximum" in node:
        yield "range", node["maximum"] + 1
    if kind == "string" and node.get("minLength", 0) >= 1:
        yield "empty", ""
    if kind == "string" and "maxLength" in node:
        yield "length", "x" * (node["maxLength"] + 1)
    if kind == "array" and "maxItems" in node and "items" in node:
        yield "items", [valid(node["items"], schema)] * (node["maxItems"] + 1)


async def listed(client: Client) -> list[Tool]:
    tools = (await client.list_tools()).tools
    assert tools
    return tools


# --- arguments a tool does not take ------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [{}, {"read_only": True}], ids=["default", "read-only"])
async def test_every_tool_refuses_an_argument_it_does_not_take(
    make_server: MakeServer, server_dir: Path, mode: str, overrides: dict[str, Any]
) -> None:
    async with Client(make_server(**overrides), mode=mode) as client:
        for tool in await listed(client):
            before = audit_lines(server_dir)
            result = await client.call_tool(tool.name, {**required_of(tool), UNKNOWN: True})
            sentence = refusal(result, tool.name)
            assert f"'{UNKNOWN}'" in sentence
            assert all(name in sentence for name in tool.input_schema.get("properties", {})), sentence
            assert audit_lines(server_dir) == before, f"{tool.name} ran with an argument it does not take"


async def test_several_unknown_arguments_are_named_together(client: Client) -> None:
    result = await client.call_tool("search_files", {"limit": 5, "foo": 1, "bar": 2})
    assert refusal(result, "search_files").startswith("there are no arguments 'foo' and 'bar'; the arguments are ")


async def test_privacy_is_not_an_argument_of_update_file(client: Client) -> None:
    result = await client.call_tool("update_file", {"file_id": "file-1", "private": True})
    sentence = refusal(result, "update_file")
    assert sentence.startswith("there is no argument 'private' (a file's privacy is chosen when it is uploaded")
    assert "cannot change afterwards" in sentence and "file_id" in sentence and "labels" in sentence
    assert "give at least one" not in sentence


async def test_an_argument_a_setting_withholds_names_the_setting(make_server: MakeServer, mode: str) -> None:
    async with Client(make_server(confirm="token"), mode=mode) as client:
        result = await client.call_tool("move_to_trash", {"file_ids": ["file-1"], "permanent": True})
        sentence = refusal(result, "move_to_trash")
        assert "'permanent'" in sentence and "MEDIA_MCP_ALLOW_PERMANENT_DELETE=true" in sentence
    async with Client(make_server(confirm="token", allow_permanent_delete=True), mode=mode) as client:
        result = await client.call_tool("move_to_trash", {"file_ids": ["file-1"], "permanent": True})
        assert "no argument" not in text_of(result)


@pytest.mark.parametrize(("given", "meant"), [("fileId", "file_id"), ("file-ids", "file_ids"), ("file_idd", "file_id")])
async def test_a_near_miss_suggests_the_argument(client: Client, given: str, meant: str) -> None:
    result = await client.call_tool("get_file", {given: "file-1"})
    assert f"'{given}' (did you mean {meant}?)" in refusal(result, "get_file")


async def test_an_unknown_name_is_quoted_short_and_visible(client: Client) -> None:
    name = "pri\u200bvate" + "z" * 5000
    sentence = refusal(await client.call_tool("get_file", {name: 1}), "get_file")
    assert "pri\\u200bvate" in sentence and "\u200b" not in sentence and "z" * 100 not in sentence


# --- invalid values ------------------------------------------------------------------------------------------------


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("search_files", {"limit": 0}, "limit must be between 1 and 100"),
    ("search_files", {"limit": 101}, "limit must be between 1 and 100"),
    ("search_files", {"limit": "many"}, "limit must be an integer between 1 and 100, not 'many'"),
    ("search_files", {"limit": 2.5}, "limit must be an integer between 1 and 100, not 2.5"),
    ("search_files", {"sort_order": "up"}, "sort_order must be one of 'asc' or 'desc', not 'up'"),
    ("search_files", {"private": "maybe"}, "private must be true or false, not 'maybe'"),
    ("search_files", {"query": "x" * 5000}, "query must be at most 200 characters long"),
    ("search_files", {"media_types": ["PHOTO"]}, "media_types[0] must be one of 'IMAGE', "),
    ("search_files", {"media_types": "IMAGE"}, "media_types must be a list of at most 7 items, each one of "),
    ("get_folder", {"folder_id": ""}, "folder_id must not be empty"),
    ("get_folder", {}, "folder_id is required: a non-empty string of at most 100 characters"),
    ("get_file", {"file_ids": ["file-1", ""]}, "file_ids[1] must not be empty"),
    ("get_file", {"file_ids": ["file-1"] * 101}, "file_ids must have at most 100 items"),
    ("create_folder", {"name": 5}, "name must be a non-empty string of at most 1000 characters, not 5"),
    (
        "search_files",
        {"limit": 0, "sort_order": "x"},
        "sort_order must be one of 'asc' or 'desc', not 'x' (check limit",
    ),
]
"""(tool, arguments, the sentence's start) for invalid values of each kind: range, type, choice, length, count."""


async def test_an_invalid_value_is_one_sentence(client: Client) -> None:
    for tool, arguments, expected in INVALID:
        sentence = refusal(await client.call_tool(tool, arguments), tool)
        assert sentence.startswith(expected), sentence


async def test_a_refused_value_is_quoted_short_with_hidden_characters_escaped(client: Client) -> None:
    sentence = refusal(await client.call_tool("search_files", {"sort_by": "na\u200bme" + "e" * 5000}), "search_files")
    assert sentence.startswith("sort_by must be one of 'name', 'updated' or 'size', not 'na\\u200bme")
    assert "\u200b" not in sentence and "e" * 100 not in sentence


async def test_every_invalid_value_of_every_tool_is_one_sentence_naming_the_argument(client: Client) -> None:
    checked = 0
    for tool in await listed(client):
        schema = tool.input_schema
        for name, node in schema.get("properties", {}).items():
            for what, value in invalid_values(node, schema):
                result = await client.call_tool(tool.name, {**required_of(tool), name: value})
                sentence = refusal(result, tool.name)
                assert sentence.startswith(name), f"{tool.name}.{name} ({what}): {sentence}"
                if what == "empty":
                    assert sentence == f"{name} must not be empty"
                checked += 1
    assert checked > 50


# --- the empty string: refused exactly where the schema says so ----------------------------------------------------


def string_slots(name: str, node: dict[str, Any], schema: dict[str, Any]) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """(subject, argument value holding one empty string, its string schema) for each free string in an argument."""
    node = resolve(node, schema)
    kind = kind_of(node)
    if kind == "string" and "enum" not in node:
        yield name, "", node
    elif kind == "array" and isinstance(node.get("items"), dict):
        for subject, value, inner in string_slots(f"{name}[0]", node["items"], schema):
            yield subject, [value], inner
    elif kind == "object" and isinstance(node.get("additionalProperties"), dict):
        for subject, value, inner in string_slots(f"{name}['k']", node["additionalProperties"], schema):
            yield subject, {"k": value}, inner


async def test_the_empty_string_is_refused_where_the_schema_says_min_length(client: Client) -> None:
    for tool in await listed(client):
        schema = tool.input_schema
        for name, node in schema.get("properties", {}).items():
            for subject, value, inner in string_slots(name, node, schema):
                result = await client.call_tool(tool.name, {**required_of(tool), name: value})
                if inner.get("minLength", 0) >= 1:
                    assert refusal(result, tool.name) == f"{subject} must not be empty"
                else:
                    assert "must not be empty" not in text_of(result), f"{tool.name}.{subject}: {text_of(result)}"
