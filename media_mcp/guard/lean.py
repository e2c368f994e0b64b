"""Smaller JSON schemas through pydantic's own hooks: a tool's schemas land in the model's context on every turn.

Pydantic writes a ``title`` for every model and property, ``"default": null`` for every optional field and
``anyOf [{type: X}, {type: null}]`` for every nullable one. None of these constrain anything, so `lean` folds them
away. Answer models inherit `Lean`; tool arguments get the same through a field-level hook (see the server's
binding).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


def lean(schema: dict[str, Any], *, prose: bool = True) -> None:
    """Fold one (model or field) schema in place; ``prose=False`` also drops property descriptions."""
    schema.pop("title", None)
    if not prose:
        schema.pop("description", None)
    if schema.get("default", 0) is None:
        del schema["default"]
    _fold_nullable(schema)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
            absent = prop.get("default", 0) is None
            if not prose:
                prop.pop("description", None)
                prop.pop("default", None)
            if absent and not prose:  # answers leave out what is None (exclude_none), so it is never null
                _drop_null(prop)
                continue
            if absent:
                del prop["default"]
            _fold_nullable(prop)


def _drop_empty_items(node: Any) -> None:
    """``"items": {}`` allows any item, as no ``items`` does; but a validator still visits every item for it (every
    cell of a search table, on every answer a client checks)."""
    if isinstance(node, dict):
        if node.get("items") == {}:
            del node["items"]
        for value in node.values():
            _drop_empty_items(value)
    elif isinstance(node, list):
        for value in node:
            _drop_empty_items(value)


def _drop_null(node: dict[str, Any]) -> None:
    arms = node.get("anyOf")
    if isinstance(arms, list) and {"type": "null"} in arms:
        kept = [arm for arm in arms if arm != {"type": "null"}]
        del node["anyOf"]
        if len(kept) == 1:
            node.update(kept[0])
        else:
            node["anyOf"] = kept


def _fold_nullable(node: dict[str, Any]) -> None:
    arms = node.get("anyOf")
    if not isinstance(arms, list) or len(arms) != 2 or {"type": "null"} not in arms:
        return
    other = arms[0] if arms[1] == {"type": "null"} else arms[1]
    kind = other.get("type")
    if not isinstance(kind, str) or "$ref" in other:
        return
    del node["anyOf"]
    node.update(other)
    node["type"] = [kind, "null"]
    if isinstance(node.get("enum"), list):
        node["enum"] = [*node["enum"], None]


def lean_argument(schema: dict[str, Any]) -> None:
    """A tool argument's schema: an optional argument is left out rather than sent as null (both work)."""
    optional = schema.get("default", 0) is None
    lean(schema)
    kind = schema.get("type")
    if optional and isinstance(kind, list) and len(kind) == 2 and "null" in kind:
        schema["type"] = next(k for k in kind if k != "null")
        if isinstance(schema.get("enum"), list):
            schema["enum"] = [v for v in schema["enum"] if v is not None]


def _lean_answer(schema: dict[str, Any]) -> None:
    lean(schema, prose=False)
    _drop_empty_items(schema)


_schema_root: ContextVar[type[BaseModel] | None] = ContextVar("_schema_root", default=None)
"""The answer whose schema is being written for a tool (see `written_as_root`)."""


@contextmanager
def written_as_root(answer: type[BaseModel]) -> Iterator[None]:
    """While a tool's output schema is written for ``answer``: every other answer it holds, at any depth, is written
    as ``object``, as the server's listing sends it anyway. Writing them in full, only for the listing to fold them
    away, took about 10 ms of the server's start-up."""
    token = _schema_root.set(answer)
    try:
        yield
    finally:
        _schema_root.reset(token)


class Lean(BaseModel):
    """Base of every answer model: its schema carries constraints and structure, the tool description the prose."""

    model_config = ConfigDict(json_schema_extra=_lean_answer)

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        root = _schema_root.get()
        if root is not None and cls is not root:
            return {"type": "object"}
        return super().__get_pydantic_json_schema__(core_schema, handler)
