"""Smaller tool schemas: the same constraints in fewer bytes, because tools/list lands in the model's context.

Pydantic's schemas carry a ``title`` for every property, ``"default": null`` for every optional
argument and ``anyOf [{type: X}, {type: null}]`` for every nullable one. None of these constrain
anything a client validates, so they are folded away; output schemas also lose their prose, which
the tool descriptions carry instead.
"""

from __future__ import annotations

import inspect
from typing import Any

from mcp.server.mcpserver import MCPServer


def compact(node: Any, *, prose: bool) -> Any:
    """A copy of a JSON schema without titles, null defaults and two-armed nullable unions."""
    if isinstance(node, list):
        return [compact(item, prose=prose) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and (value is None or not prose):
            continue
        if key == "minLength" and value == 1:  # emptiness is refused anyway, with a clear error
            continue
        if key == "description" and not prose and isinstance(value, str):
            continue
        if key in ("properties", "$defs") and isinstance(value, dict):
            out[key] = {name: compact(sub, prose=prose) for name, sub in value.items()}
            continue
        if key == "items":  # the array's own description says it
            if value == {}:  # any item: same as saying nothing, and validators need not visit each one
                continue
            out[key] = compact(value, prose=False)
            continue
        out[key] = compact(value, prose=prose)
    return _fold_nullable(out)


def _fold_nullable(node: dict[str, Any]) -> dict[str, Any]:
    arms = node.get("anyOf")
    if not isinstance(arms, list) or len(arms) != 2 or {"type": "null"} not in arms:
        return node
    other = arms[0] if arms[1] == {"type": "null"} else arms[1]
    kind = other.get("type")
    if not isinstance(kind, str) or "$ref" in other or "anyOf" in other:
        return node
    merged: dict[str, Any] = {k: v for k, v in node.items() if k != "anyOf"} | dict(other)
    merged["type"] = [kind, "null"]
    if isinstance(merged.get("enum"), list):
        merged["enum"] = [*merged["enum"], None]
    return merged


def inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace each ``$ref`` to a local definition by the definition itself (ours are never recursive)."""
    defs = schema.get("$defs")
    if not isinstance(defs, dict):
        return schema

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and len(node) == 1:
            return walk(defs[ref.removeprefix("#/$defs/")])
        return {k: walk(v) for k, v in node.items() if k != "$defs"}

    result: dict[str, Any] = walk(schema)
    return result


def optional_means_omitted(schema: dict[str, Any]) -> dict[str, Any]:
    """Input properties that are not required: say "leave it out" rather than "send null" (both work)."""
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type")
        if name not in required and isinstance(kind, list) and len(kind) == 2 and "null" in kind:
            prop["type"] = next(k for k in kind if k != "null")
            if isinstance(prop.get("enum"), list):
                prop["enum"] = [v for v in prop["enum"] if v is not None]
    return schema


SPEC_DEFAULTS = {"read_only_hint": False, "destructive_hint": True, "idempotent_hint": False, "open_world_hint": True}


def lean_annotations(annotations: Any) -> Any:
    """Keep only hints that differ from the MCP defaults; the meaning is the same, the bytes fewer."""
    if annotations is None:
        return None
    values = annotations.model_dump(exclude_none=True)
    if values.get("read_only_hint"):  # the spec reads the other two only for tools that write
        values.pop("destructive_hint", None)
        values.pop("idempotent_hint", None)
    kept = {k: v for k, v in values.items() if SPEC_DEFAULTS.get(k) != v}
    return type(annotations)(**kept)


def loosen_nested(schema: dict[str, Any]) -> dict[str, Any]:
    """Output schemas: keep the top level whole; nested objects list their properties only."""

    def walk(node: Any, top: bool) -> Any:
        if isinstance(node, list):
            return [walk(item, False) for item in node]
        if not isinstance(node, dict):
            return node
        nested_object = not top and "properties" in node
        return {
            k: walk(v, False)
            for k, v in node.items()
            if not (nested_object and (k == "required" or (k == "type" and v == "object")))
        }

    result: dict[str, Any] = walk(schema, True)
    return result


def compact_tools(mcp: MCPServer) -> None:
    """Rewrite every registered tool's description, schemas and annotations in place."""
    for tool in mcp._tool_manager.list_tools():  # the SDK exposes no public hook for published schemas
        tool.description = inspect.cleandoc(tool.description or "")
        tool.annotations = lean_annotations(tool.annotations)
        tool.parameters = optional_means_omitted(compact(tool.parameters, prose=True))
        if tool.fn_metadata.output_schema is not None:
            output = inline_defs(compact(tool.fn_metadata.output_schema, prose=False))
            tool.fn_metadata.output_schema = loosen_nested(output)
