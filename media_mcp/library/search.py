"""Searching the catalog: the words a search requires, the text index they are found through, and keyset pages.

A search is bounded before any work (`SEARCH_LIMITS`) and while it runs (the listing's time budget:
`search_refusal`); a page is the rows after where the previous one stopped, in one sort order (`page_sql`).
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_SEARCH_CHARS = 200
"""The longest search text: as long as Wix's search field takes (a cursor carries the search it was issued for)."""
MAX_SEARCH_WORDS = 16
"""The most words a search may require, once repeats and words inside longer ones are dropped (they add nothing)."""
SEARCH_LIMITS = (
    f"a search may have at most {MAX_SEARCH_CHARS} characters and {MAX_SEARCH_WORDS} different words "
    "(a repeated word, or one inside a longer word, counts once)"
)


class SearchRefused(Exception):
    """A search the library will not run (``code``, and a message that says why and what to do instead)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def search_words(text: str, fold: Callable[[str], str] = str.lower) -> list[str]:
    """The words a search requires, folded with ``fold``, longest first; control characters (NUL breaks FTS5
    queries) count as spaces, and a word repeated or inside a longer one is dropped (the longer one requires it).

    Raises `SearchRefused` for a search over `SEARCH_LIMITS`, before any work.
    """
    if len(text) > MAX_SEARCH_CHARS:
        raise SearchRefused("SEARCH_TOO_LONG", f"the search has {len(text)} characters; {SEARCH_LIMITS}")
    words = fold("".join(" " if unicodedata.category(c) == "Cc" else c for c in text)).split()
    kept: list[str] = []
    for word in sorted(set(words), key=lambda w: (-len(w), w)):
        if not any(word in longer for longer in kept):
            kept.append(word)
    if len(kept) > MAX_SEARCH_WORDS:
        raise SearchRefused(
            "SEARCH_TOO_COMPLEX",
            f"the search has {len(kept)} different words; {SEARCH_LIMITS}. Leave some out, or narrow the search"
            " with filters (mediaTypes, private, rootFolder)",
        )
    return kept


SHORT_WORD_SQL = "body LIKE ? ESCAPE '\\'"


def _contains(word: str) -> str:
    """The LIKE pattern for text that contains ``word`` (its ``%``, ``_`` and ``\\`` are plain characters)."""
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class TextSearch:
    """The words a file search requires, in name, MIME type or labels (`search_text`), case-insensitively.

    Words of three characters or more are found through the trigram index (``match``, an FTS5 query). Shorter
    ones cannot be: LIKE looks for them in the indexed text row by row (``short``), so they never match JSON
    punctuation or cross fields.
    """

    match: str | None
    short: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> TextSearch | None:
        """The search for ``text``; None if it has no words. Raises `SearchRefused` (see `search_words`)."""
        words = search_words(text)
        if not words:
            return None
        match = " ".join('"' + w.replace('"', '""') + '"' for w in words if len(w) >= 3)
        return cls(match or None, tuple(w for w in words if len(w) < 3))

    def matches(self) -> tuple[str, list[Any]]:
        """A SELECT of the rowids of every file that matches."""
        clauses = (["files_text MATCH ?"] if self.match else []) + [SHORT_WORD_SQL] * len(self.short)
        params = ([self.match] if self.match else []) + [_contains(w) for w in self.short]
        return f"SELECT rowid FROM files_text WHERE {' AND '.join(clauses)}", params

    def clause(self) -> tuple[str, list[Any]]:
        """The condition on ``files`` rows for a search that matches many.

        With indexed words the matches are found once; with short words only, each row is read as the sorted
        walk reaches it, so a common word stops as soon as the page is full.
        """
        if self.match is not None:
            sql, params = self.matches()
            return f"seq IN ({sql})", params
        checks = " AND ".join([SHORT_WORD_SQL] * len(self.short))
        return f"(SELECT {checks} FROM files_text WHERE rowid = seq)", [_contains(w) for w in self.short]


@dataclass(frozen=True)
class Page:
    """What a listing asks for: filters, one sort, and where the previous page stopped."""

    where: str
    params: tuple[Any, ...]
    sort_column: str
    descending: bool
    limit: int
    after: tuple[Any, Any] | None = None
    text: TextSearch | None = None  # the words a file search requires, besides ``where``


IDS = "SELECT value FROM json_each(?)"
"""A list of ids as one parameter (`ids_param`): one statement text whatever the list's length, so SQLite's statement
cache keeps one statement, not one per length (their churn fragmented the heap under load), and no list is too long
for SQLite's limit on parameters."""
LISTED_SQL = f"seq IN ({IDS})"


def ids_param(ids: Sequence[str] | Sequence[int]) -> str:
    """The parameter of `IDS`."""
    return json.dumps(list(ids))


FEW_MATCHES = 2000
"""Up to this many text matches, a search reads its matches first and sorts them; above, it walks the sorted index."""


def search_text(display_name: str, mime_type: str, labels: Iterable[str]) -> str:
    """What search looks in: name, MIME type and labels, one per line, lower-cased (the index and LIKE agree)."""
    return "\n".join([display_name, mime_type, *labels]).lower()


def search_refusal(exc: sqlite3.OperationalError, budget: float | None) -> SearchRefused | None:
    """The refusal a listing that SQLite stopped deserves: over its time budget, or too large to run at all."""
    reason = str(exc)
    if reason == "interrupted":
        spent = f"its {budget:g} s budget" if budget is not None else "its time budget"
        return SearchRefused(
            "SEARCH_TOO_BROAD",
            f"the search was stopped after {spent}: it is too broad for this library. Add words of three or more"
            " characters, or narrow it with filters (mediaTypes, private, rootFolder)",
        )
    if "too large" in reason or "too complex" in reason or "too many" in reason:
        return SearchRefused("SEARCH_TOO_COMPLEX", f"the search is too complex to run ({reason}); {SEARCH_LIMITS}")
    return None


def page_sql(table: str, page: Page, *, found: list[int] | None = None) -> tuple[str, tuple[Any, ...]]:
    """Keyset paging: rows after ``page.after`` in (sort column, id) order.

    ``found``: the few rows that match the text (see `Catalog.list_files`): fetch them by rowid and sort them,
    rather than walking a sorted index through every row of the scope (``NOT INDEXED`` still allows the rowid
    lookups).
    """
    where, params = page.where, page.params
    if found is not None:
        where, params = f"({where}) AND {LISTED_SQL}", (*params, ids_param(found))
    elif page.text is not None:
        clause, extra = page.text.clause()
        where, params = f"({where}) AND {clause}", (*params, *extra)
    op = "<" if page.descending else ">"
    if page.after is not None:
        col = page.sort_column
        where = f"({where}) AND ({col} {op} ? OR ({col} = ? AND id {op} ?))"
        params = (*params, page.after[0], page.after[0], page.after[1])
    direction = "DESC" if page.descending else "ASC"
    source = f"{table} NOT INDEXED" if found is not None else table
    sql = f"SELECT * FROM {source} WHERE {where} ORDER BY {page.sort_column} {direction}, id {direction} LIMIT ?"
    return sql, (*params, page.limit + 1)
