"""Untrusted text (names, labels) goes out only cleaned and capped, in typed fields.

File and folder names are written by whoever uploaded them; an agent must read them as data.
Control, bidi-override and zero-width characters are removed so a name cannot hide text or
reorder what a person sees, and long names are cut.
"""

from __future__ import annotations

import unicodedata

NAME_CAP = 255
LABEL_CAP = 200

_REMOVE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Zl", "Zp"})


def clean(text: str | None, cap: int = NAME_CAP) -> str:
    """``text`` without invisible or control characters, whitespace runs collapsed, at most ``cap`` long."""
    if not text:
        return ""
    if text.isprintable():  # no control, format, separator (but ' '), private or unpaired character: the usual case
        collapsed = " ".join(text.split())
        return collapsed if len(collapsed) <= cap else collapsed[: cap - 1] + "…"
    kept = "".join(" " if ch in "\t\n\r" else ch for ch in text if ch in "\t\n\r" or _visible(ch))
    collapsed = " ".join(kept.split())
    return collapsed if len(collapsed) <= cap else collapsed[: cap - 1] + "…"


def _visible(ch: str) -> bool:
    return unicodedata.category(ch) not in _REMOVE_CATEGORIES


def visible(text: str, cap: int = 200) -> str:
    """Caller-supplied text (an id, a path) quoted in a message: invisible characters escaped, not dropped, and capped.

    Unlike `clean`, nothing is removed, so the caller can see exactly which id was refused.
    """
    shown = "".join(ch if _visible(ch) else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return shown if len(shown) <= cap else shown[: cap - 1] + "…"


def clean_labels(labels: list[str], cap: int = 50) -> list[str]:
    cleaned = [clean(label, LABEL_CAP) for label in labels[:cap]]
    return [label for label in cleaned if label]
