"""List and search requests turned into keyset pages, with opaque cursors that carry the filters."""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

from media_mcp.library.errors import ApiError, invalid
from media_mcp.library.rows import FileRow, FolderRow
from media_mcp.library.search import IDS, Page, SearchRefused, TextSearch, ids_param, search_words
from media_mcp.wix import models as m

DEFAULT_LIMIT = 50
_FILE_COLUMNS = {"displayName": "sort_name", "updatedDate": "updated", "sizeInBytes": "size"}
_FOLDER_COLUMNS = {"displayName": "sort_name", "updatedDate": "updated"}
_INT64_MAX = 2**63 - 1
_MAX_SORT_TEXT = 4000  # a casefolded name (at most 1000 characters) and an id fit well within this
_FILTERABLE_TYPES = frozenset(t.value for t in m.FILTERABLE_MEDIA_TYPES)


@dataclass(frozen=True)
class Query:
    """The filters and sort of one listing; a cursor repeats them so later pages match the first."""

    kind: str  # 'files' | 'folders'
    scope: str  # 'parent' | 'root' | 'deleted'
    target: str  # a folder id or a RootFolder value
    sort_field: str
    descending: bool
    media_types: tuple[str, ...] = ()
    private: bool | None = None
    search: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "k": self.kind, "s": self.scope, "t": self.target, "f": self.sort_field, "d": self.descending,
            "m": list(self.media_types), "p": self.private, "q": self.search,
        }  # fmt: skip

    @classmethod
    def from_json(cls, raw: Any) -> Query:
        if not isinstance(raw, dict):
            raise ValueError("not an object")
        query = cls(
            kind=str(raw["k"]),
            scope=str(raw["s"]),
            target=str(raw["t"]),
            sort_field=str(raw["f"]),
            descending=bool(raw["d"]),
            media_types=tuple(str(t) for t in raw["m"]),
            private=None if raw["p"] is None else bool(raw["p"]),
            search=None if raw["q"] is None else _text(raw["q"]),
        )
        columns = _FILE_COLUMNS if query.kind == "files" else _FOLDER_COLUMNS
        if query.sort_field not in columns or query.scope not in ("parent", "root", "deleted"):
            raise ValueError("unknown sort or scope")
        if query.kind == "folders" and (query.media_types or query.private is not None):
            raise ValueError("folders have no media type or privacy")
        if not set(query.media_types) <= _FILTERABLE_TYPES:
            raise ValueError("unknown media type")
        return query


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


def sort_of(kind: str, sort: m.Sorting | None) -> tuple[str, bool]:
    """The sort field and direction; Wix's default is newest-updated first."""
    if sort is None:
        return "updatedDate", True
    allowed = _FILE_COLUMNS if kind == "files" else _FOLDER_COLUMNS
    if sort.field_name not in allowed:
        raise ApiError(
            400,
            "UNSUPPORTED_SORT_VALUE",
            f"cannot sort by {sort.field_name!r}; use one of {', '.join(allowed)}",
            data={"allowedValues": list(allowed), "requestValue": sort.field_name},
        )
    return sort.field_name, sort.order == m.SortOrder.DESC


def media_types_of(values: list[str] | None) -> tuple[str, ...]:
    allowed = [t.value for t in m.FILTERABLE_MEDIA_TYPES]
    for value in values or []:
        if value not in allowed:
            raise ApiError(
                400,
                "UNSUPPORTED_MEDIA_TYPE",
                f"cannot filter by media type {value!r}; use one of {', '.join(allowed)}",
                data={"allowedValues": allowed, "requestValue": value},
            )
    return tuple(dict.fromkeys(values or []))


def _encode(query: Query, last: tuple[Any, str]) -> str:
    raw = json.dumps({"q": query.to_json(), "a": list(last)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _sort_value_fits(column: str, value: Any) -> bool:
    """Could ``value`` be the sort value of a row in ``column``? (SQLite must be able to compare it.)"""
    if column == "size":
        return type(value) is int and 0 <= value <= _INT64_MAX
    if column == "updated":
        return type(value) in (int, float) and math.isfinite(value) and abs(value) <= _INT64_MAX
    return isinstance(value, str) and len(value) <= _MAX_SORT_TEXT


def decode_cursor(cursor: str, kind: str) -> tuple[Query, tuple[Any, str]]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        query = Query.from_json(raw["q"])
        value, last_id = raw["a"]
        if query.kind != kind or not isinstance(last_id, str) or len(last_id) > _MAX_SORT_TEXT:
            raise ValueError("cursor for another listing")
        column = (_FILE_COLUMNS if kind == "files" else _FOLDER_COLUMNS)[query.sort_field]
        if not _sort_value_fits(column, value):
            raise ValueError("the cursor's sort value does not fit its sort field")
    except (ValueError, KeyError, TypeError, RecursionError, binascii.Error, UnicodeDecodeError) as exc:
        raise invalid("paging.cursor", "the cursor is not one this listing issued", rule="FORMAT") from exc
    if query.search is not None:
        try:
            search_words(query.search)
        except SearchRefused as exc:
            raise refused(exc, "paging.cursor", "the cursor is not one this listing issued: ") from exc
    return query, (value, last_id)


def refused(exc: SearchRefused, field: str | None = None, prefix: str = "") -> ApiError:
    """The 400 for a search the library will not run: a field's violation if it is over the limits up front."""
    if field is None:
        return ApiError(400, exc.code, f"{prefix}{exc}")
    rule = "MAX_LENGTH" if exc.code == "SEARCH_TOO_LONG" else "MAX_SIZE"
    return invalid(field, f"{prefix}{exc}", rule=rule, code=exc.code)


def _where(query: Query) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.scope == "parent":
        clauses.append("parent_id = ? AND state = 'OK'")
        params.append(query.target)
    elif query.scope == "deleted":
        if query.target in (m.MEDIA_ROOT_ID, m.TRASH_ROOT_ID):
            clauses.append("parent_id = ? AND state = 'DELETED'")
            params.append(m.TRASH_ROOT_ID)
        else:
            clauses.append("state = 'DELETED' AND (parent_id = ? OR trash_parent = ?)")
            params += [query.target, query.target]
    elif query.target == m.RootFolder.TRASH_ROOT:
        clauses.append("state = 'DELETED'")
    else:
        clauses.append("state = 'OK' AND root = ?")
        params.append("visitor" if query.target == m.RootFolder.VISITOR_UPLOADS_ROOT else "media")
    if query.media_types:
        clauses.append(f"media_type IN ({IDS})")
        params.append(ids_param(list(query.media_types)))
    if query.private is not None:
        clauses.append("private = ?")
        params.append(int(query.private))
    if query.kind == "folders" and query.search:
        words = search_words(query.search, str.casefold)  # as `sort_name` holds the name
        clauses += ["instr(sort_name, ?) > 0"] * len(words)
        params += words
    return " AND ".join(clauses), params


def page_of(query: Query, paging: m.CursorPaging | None, after: tuple[Any, str] | None) -> Page:
    """The page to read; a search over the limits is refused here (400), before any work."""
    try:
        where, params = _where(query)
        text = TextSearch.of(query.search) if query.kind == "files" and query.search else None
    except SearchRefused as exc:
        raise refused(exc, "search") from exc
    columns = _FILE_COLUMNS if query.kind == "files" else _FOLDER_COLUMNS
    limit = paging.limit if paging and paging.limit else DEFAULT_LIMIT
    return Page(
        where=where,
        params=tuple(params),
        sort_column=columns[query.sort_field],
        descending=query.descending,
        limit=limit,
        after=after,
        text=text,
    )


def next_cursor(query: Query, rows: list[FileRow] | list[FolderRow], limit: int) -> m.PagingMetadataV2:
    """Paging metadata for a page fetched with one extra row (which is dropped by the caller)."""
    if len(rows) <= limit:
        return m.PagingMetadataV2(cursors=m.Cursors(next=""), has_next=False)
    last = rows[limit - 1]
    column = (_FILE_COLUMNS if query.kind == "files" else _FOLDER_COLUMNS)[query.sort_field]
    value: Any = {
        "sort_name": last.display_name.casefold(),
        "updated": last.updated,
        "size": getattr(last, "size", 0),
    }[column]
    return m.PagingMetadataV2(cursors=m.Cursors(next=_encode(query, (value, last.id))), has_next=True)
