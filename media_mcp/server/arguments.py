"""Arguments a tool does not take, and invalid ones, each said in one sentence the model can act on.

The SDK drops an argument its tool does not take, and reports a failed validation in pydantic's words (the input
echoed, a documentation URL). `unknown_arguments` refuses the first by name, with the names the tool does take and,
where one is known, why the argument is not there; `invalid_arguments` turns the second into one sentence naming the
argument and what it allows, read from the tool's input schema, so the sentence and the schema cannot disagree.
Whatever the caller sent is quoted only in short, with hidden characters escaped.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from media_mcp.guard.text import visible

ABSENT_ARGUMENT_HINTS: dict[str, str] = {
    "private": "a file's privacy is chosen when it is uploaded, with generate_upload_url, import_file or upload_file, "
    "and cannot change afterwards",
}
"""Why an argument a tool does not take is not there, by argument name: said when a call gives it anyway."""


def unknown_arguments(given: Iterable[str], schema: Mapping[str, Any], hints: Mapping[str, str]) -> str | None:
    """One sentence refusing the arguments in ``given`` that the input ``schema`` has no property for, or None."""
    valid = list(schema.get("properties", {}))
    unknown = [name for name in given if name not in valid]
    if not unknown:
        return None
    shown = [f"'{visible(name, 60)}'" for name in unknown[:5]] + ([f"{len(unknown) - 5} more"] if unknown[5:] else [])
    why = [hint for name in unknown[:5] if (hint := _absent_hint(name, valid, hints))]
    which = f"there is no argument {shown[0]}" if len(shown) == 1 else f"there are no arguments {_series(shown)}"
    reason = f" ({'; '.join(why)})" if why else ""
    offer = f"the arguments are {_series(valid)}" if valid else "this tool takes no arguments"
    return f"{which}{reason}; {offer}"


def _absent_hint(name: str, valid: list[str], hints: Mapping[str, str]) -> str | None:
    if name in hints:
        return hints[name]
    if name in ABSENT_ARGUMENT_HINTS:
        return ABSENT_ARGUMENT_HINTS[name]
    if len(name) > 100:
        return None
    folded = {candidate.replace("_", "").lower(): candidate for candidate in valid}
    close = folded.get(name.replace("_", "").replace("-", "").lower()) or next(
        iter(difflib.get_close_matches(name, valid, n=1, cutoff=0.75)), None
    )
    return f"did you mean {close}?" if close else None


def invalid_arguments(error: ValidationError, schema: Mapping[str, Any]) -> str:
    """One sentence for a failed validation of a tool's arguments: the argument, and what it allows.

    What is allowed is read from the tool's input ``schema`` (the one the client was given), so the sentence and
    the schema cannot disagree. The caller's value is quoted only as a short excerpt, hidden characters escaped.
    """
    problems = error.errors(include_url=False)
    first = problems[0]
    subject, node = _locate(first["loc"], schema)
    sentence = _sentence(first, subject, node, schema)
    named = str(first["loc"][0]) if first["loc"] else ""
    others = sorted({str(p["loc"][0]) for p in problems[1:] if p["loc"] and str(p["loc"][0]) != named})
    if others:
        sentence += f" (check {_series([visible(o, 60) for o in others[:5]])} too)"
    return sentence


def _series(items: list[str], word: str = "and") -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"


def _resolve(node: Any, schema: Mapping[str, Any]) -> dict[str, Any]:
    """A property's schema with ``$ref`` (and a lone ``allOf``) followed and a nullable ``anyOf`` folded."""
    for _ in range(8):
        if not isinstance(node, dict):
            return {}
        if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/$defs/"):
            node = {**schema.get("$defs", {}).get(node["$ref"].removeprefix("#/$defs/"), {}), **node}
            del node["$ref"]
        elif isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
            node = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
        elif isinstance(node.get("anyOf"), list):
            arms = [arm for arm in node["anyOf"] if arm != {"type": "null"}]
            if len(arms) != 1:
                return node
            node = {**arms[0], **{k: v for k, v in node.items() if k != "anyOf"}}
        else:
            return node
    return {}


def _locate(loc: tuple[int | str, ...], schema: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Where an error is (``file_ids[3]``, ``names['a']``) and the schema of what is there."""
    if not loc:
        return "the arguments", dict(schema)
    subject = visible(str(loc[0]), 60)
    node = _resolve(schema.get("properties", {}).get(str(loc[0]), {}), schema)
    for part in loc[1:]:
        if "anyOf" in node:  # a union: pydantic names the arm it tried; the whole union is what is allowed
            break
        if isinstance(part, int) and "items" in node:
            subject, node = f"{subject}[{part}]", _resolve(node["items"], schema)
        elif isinstance(part, str) and part in node.get("properties", {}):
            subject, node = f"{subject}.{visible(part, 60)}", _resolve(node["properties"][part], schema)
        elif isinstance(part, str) and isinstance(node.get("additionalProperties"), dict):
            subject, node = f"{subject}['{visible(part, 60)}']", _resolve(node["additionalProperties"], schema)
    return subject, node


_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
_CHOICE_ERRORS = {"literal_error", "enum"}


def _sentence(problem: ErrorDetails, subject: str, node: dict[str, Any], schema: Mapping[str, Any]) -> str:
    kind: str = problem["type"]
    value = problem.get("input")
    context = problem.get("ctx") or {}
    if kind == "missing":
        return f"{subject} is required: {_describe(node, schema)}"
    if kind in _RANGE_ERRORS:
        return f"{subject} must be {_bounds(node) or _describe(node, schema)}"
    if kind == "multiple_of":
        return f"{subject} must be a multiple of {context.get('multiple_of')}"
    if kind in ("string_too_short", "string_too_long"):
        if value == "":
            return f"{subject} must not be empty"
        return f"{subject} must be {_count(node, 'minLength', 'maxLength', 'characters')} long"
    if kind in ("too_short", "too_long"):
        entries = ("minProperties", "maxProperties") if node.get("type") == "object" else ("minItems", "maxItems")
        return f"{subject} must have {_count(node, *entries, 'items')}"
    if kind in _CHOICE_ERRORS:
        return f"{subject} must be {_describe(node, schema)}, not {_excerpt(value)}"
    if kind == "string_pattern_mismatch":
        return f"{subject} must match the pattern {visible(str(context.get('pattern')), 100)}"
    if kind in ("value_error", "assertion_error"):
        reason = str(context.get("error") or problem.get("msg") or "")
        return f"{subject} is not valid: {visible(reason, 200)}"
    return f"{subject} must be {_describe(node, schema)}, not {_excerpt(value)}"


def _excerpt(value: Any) -> str:
    """The caller's value as quoted back: a scalar in short (hidden characters escaped), a container by its kind."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{visible(value, 40)}'"
    if isinstance(value, int) and value.bit_length() > 128:  # str() of a huge integer is slow, or refused
        return "a number too large to quote"
    return visible(str(value), 40)


def _bounds(node: Mapping[str, Any]) -> str:
    low, high = node.get("minimum"), node.get("maximum")
    above, below = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
    if low is not None and high is not None:
        return f"between {low} and {high}"
    parts = []
    if low is not None:
        parts.append(f"at least {low}")
    if above is not None:
        parts.append(f"greater than {above}")
    if high is not None:
        parts.append(f"at most {high}")
    if below is not None:
        parts.append(f"less than {below}")
    return " and ".join(parts)


def _count(node: Mapping[str, Any], low_key: str, high_key: str, unit: str) -> str:
    low, high = node.get(low_key), node.get(high_key)
    if low is not None and high is not None:
        return f"{low} to {high} {unit}"
    if high is not None:
        return f"at most {high} {unit}"
    return f"at least {low or 0} {unit}"


def _describe(node: Mapping[str, Any], schema: Mapping[str, Any], depth: int = 0) -> str:
    """What a schema allows, as a noun phrase: "an integer between 1 and 100", "one of 'asc' or 'desc'"."""
    if "enum" in node:
        return "one of " + _series([_excerpt(v) for v in node["enum"] if v is not None], "or")
    if "const" in node:
        return _excerpt(node["const"])
    if isinstance(node.get("anyOf"), list):
        arms = [_describe(_resolve(arm, schema), schema, depth) for arm in node["anyOf"] if arm != {"type": "null"}]
        return " or ".join(dict.fromkeys(arms))
    kinds = node.get("type")
    kind = next((k for k in kinds if k != "null"), None) if isinstance(kinds, list) else kinds
    if kind in ("integer", "number"):
        bounds = _bounds(node)
        return ("an integer" if kind == "integer" else "a number") + (f" {bounds}" if bounds else "")
    if kind == "string":
        low, high = node.get("minLength", 0), node.get("maxLength")
        text = "a non-empty string" if low == 1 else "a string"
        if high is not None:
            text += f" of {low} to {high} characters" if low > 1 else f" of at most {high} characters"
        elif low > 1:
            text += f" of at least {low} characters"
        return text
    if kind == "boolean":
        return "true or false"
    if kind == "array":
        text = "a list"
        if "minItems" in node or "maxItems" in node:
            text += f" of {_count(node, 'minItems', 'maxItems', 'items')}"
        items = _resolve(node.get("items"), schema)
        if items and depth < 2:
            text += f", each {_describe(items, schema, depth + 1)}"
        return text
    if kind == "object":
        values = _resolve(node.get("additionalProperties"), schema)
        if values and depth < 2:
            return f"an object whose values are each {_describe(values, schema, depth + 1)}"
        return "an object"
    return "a valid value"
