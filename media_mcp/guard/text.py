"""Untrusted text (names, labels) goes out only cleaned and capped, in typed fields; nothing invisible goes out at all.

File and folder names are written by whoever uploaded them; an agent must read them as data. What a reader cannot
see is removed by Unicode property, not from a hand-made list: default-ignorable code points (zero-width
characters, variation selectors, tag characters, Hangul fillers, the combining grapheme joiner, ...), controls,
format characters (bidi overrides and isolates), private use, unassigned and surrogate code points, and line or
paragraph separators. The properties come from the `regex` module, which tracks each Unicode release. One glyph is
blank without any such property, the braille pattern blank (U+2800): it is treated as a space.

- `clean` is for names and labels: hidden characters dropped, whitespace collapsed, capped.
- `visible` is for text a caller sent (an id, a path) quoted back: hidden characters escaped, so the caller sees
  exactly what was refused.
- `fence` is the last step of every answer: any hidden character still in any string is escaped.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import regex

NAME_CAP = 255
LABEL_CAP = 200


class _Patterns(NamedTuple):
    hidden: regex.Pattern[str]
    """One character a reader cannot see (or that reorders, or that a terminal or a line splitter acts on)."""
    shown_escaped: regex.Pattern[str]
    """What `visible` and `fence` escape: the hidden characters and the blank braille pattern."""
    spaces: regex.Pattern[str]
    """Runs of whitespace of any kind, and the blank braille pattern, which read as one space."""


@functools.cache
def _patterns() -> _Patterns:
    """Compiled on the first text that is not plain ASCII: importing `regex` and compiling its Unicode classes took
    about 6 ms of the server's start-up, and plain names and ids never need them."""
    import regex

    hidden = r"\p{Default_Ignorable_Code_Point}\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Zl}\p{Zp}"
    return _Patterns(
        hidden=regex.compile(f"[{hidden}]"),
        shown_escaped=regex.compile(f"[{hidden}\\u2800]"),
        spaces=regex.compile(r"[\s\p{Zs}\u2800]+"),
    )


def hidden_characters() -> regex.Pattern[str]:
    """The pattern of one hidden character (see the module's docstring)."""
    return _patterns().hidden


def _cap(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[: cap - 1] + "…"


def clean(text: str | None, cap: int = NAME_CAP) -> str:
    """``text`` without hidden characters, whitespace runs collapsed to one space, at most ``cap`` long."""
    if not text:
        return ""
    if text.isascii() and text.isprintable():  # no hidden character, and spaces are the only whitespace
        return _cap(" ".join(text.split()), cap)
    patterns = _patterns()
    spaced = patterns.spaces.sub(" ", text)  # first, so a tab or a line break between words still separates them
    return _cap(" ".join(patterns.hidden.sub("", spaced).split()), cap)


def _escape(match: regex.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible(text: str, cap: int = 200) -> str:
    """Caller-supplied text quoted in a message: hidden characters escaped (``\\u200b``), not dropped, and capped."""
    return _cap(_patterns().shown_escaped.sub(_escape, text), cap)


def quoted(name: str | None) -> str:
    """A name (already cleaned) inside the server's own sentences, written as a JSON string: no quote or backslash in
    it can close the quotation, so nothing in a name reads as the server's words."""
    return json.dumps(name or "", ensure_ascii=False)


def clean_labels(labels: list[str], cap: int = 50) -> list[str]:
    cleaned = [clean(label, LABEL_CAP) for label in labels[:cap]]
    return [label for label in cleaned if label]


def _fence_text(text: str, keep_breaks: bool) -> str:
    if text.isascii() and text.isprintable():  # most strings (ids, dates, plain names): nothing can hide in them
        return text
    shown_escaped = _patterns().shown_escaped
    if keep_breaks:
        return "\n".join(shown_escaped.sub(_escape, line) for line in text.split("\n"))
    return shown_escaped.sub(_escape, text)


def fence(value: Any, *, keep_breaks: bool = True) -> Any:
    """A JSON value with every hidden character in every string (keys included) escaped; line breaks kept in text
    the server wrote (previews and messages) when ``keep_breaks``."""
    if isinstance(value, str):
        return _fence_text(value, keep_breaks)
    if isinstance(value, dict):
        return {_fence_text(str(k), False): fence(v, keep_breaks=keep_breaks) for k, v in value.items()}
    if isinstance(value, list):
        return [fence(item, keep_breaks=keep_breaks) for item in value]
    return value
