"""The cost of a search is bounded: complexity up front, time by a budget, and a slow search stalls nobody else.

Thousands of files and folders are written straight to the catalog once per module (one commit, as the bench seeds
its catalogs) and copied into each test's data directory. No timed assertions: the time budget is made small enough
that the interruption path runs every time, and a search is held inside the store with events, not sleeps.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

from media_mcp.library.catalog import Catalog
from media_mcp.library.db import SEARCH_THREADS, Database
from media_mcp.library.rows import FileRow
from media_mcp.library.service import Library
from media_mcp.settings import LibrarySettings
from tests.conftest import START, Api

pytestmark = pytest.mark.anyio

FILES = 4000
FOLDERS = 4000
WORDS = ["beach", "sunset", "mountain", "city", "portrait", "forest", "river", "ocean", "street", "night"]
LIMITS = "at most 200 characters and 16 different words"
WAIT = 10.0  # seconds: how long a step may take before the test gives up (never reached when the library is right)
HELD = 5.0  # seconds a get_file may take while a search is held, before it counts as stalled


class _OneTransaction(Database):
    """The library's own `Catalog` writing many rows under one commit (no fsync per row)."""

    def __init__(self, conn: sqlite3.Connection) -> None:  # borrows an open transaction; owns nothing
        self.conn = conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        yield self.conn


@dataclass(frozen=True)
class Seeded:
    data_dir: Path
    sale_id: str  # a file named with LIKE's special characters
    photo_id: str  # any other file


def _file(library: Library, name: str, mime: str, updated: float) -> FileRow:
    return FileRow(
        id=f"{library.site_id[:6]}_{secrets.token_hex(16)}~mv2.jpg", display_name=name, parent_id="media-root",
        root="media", state="OK", private=False, media_type="IMAGE", mime_type=mime, size=1000, hash="0" * 32,
        blob=None, status="READY", created=updated, updated=updated,
    )  # fmt: skip


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """A library with `FILES` files (names from `WORDS`, none with a 'q') and `FOLDERS` folders, made once."""
    data_dir = tmp_path_factory.mktemp("seeded") / "data"
    with Library.open(LibrarySettings(data_dir=data_dir)) as library, library.db.tx() as conn:
        catalog = Catalog(_OneTransaction(conn))
        rows = [
            _file(library, f"{WORDS[i % 10]}-{WORDS[i * 7 % 10]}-{i:05d}.jpg", "image/jpeg", START + i)
            for i in range(FILES)
        ]
        sale = _file(library, "100%_off\\sale.png", "image/png", START)
        for row in [*rows, sale]:
            catalog.add_file(row)
        for i in range(FOLDERS):
            catalog.create_folder(secrets.token_hex(16), f"{WORDS[i % 10].title()} {i}", "media-root", START + i)
        catalog.create_folder(secrets.token_hex(16), "Straße", "media-root", START)
    return Seeded(data_dir, sale.id, rows[0].id)


@pytest.fixture
def data_dir(tmp_path: Path, seeded: Seeded) -> Path:
    """Each test gets its own copy of the seeded library."""
    target = tmp_path / "data"
    shutil.copytree(seeded.data_dir, target)
    return target


@pytest.fixture
def settings(data_dir: Path) -> LibrarySettings:
    """A budget no search here comes near, however busy the machine; the budget test sets its own."""
    return LibrarySettings(data_dir=data_dir, library_allow_private_imports=False, library_search_budget_seconds=60)


def _violation(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    violation: dict[str, Any] = response.json()["details"]["validationError"]["fieldViolations"][0]
    return violation


def _refusal(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["details"]["applicationError"]
    return error


# --- complexity: bounded up front --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "found"),
    [
        pytest.param(" ".join(["e"] * 98 + ["zq"]), 0, id="a 200-character flood of one-letter words"),
        pytest.param(" ".join(["ge"] * 66 + ["q"]), 0, id="two-letter words repeated"),
        pytest.param(" ".join(["ima"] * 50), 50, id="one trigram repeated as words"),
        pytest.param(" ".join(["ima", "mag", "age", "jpg"] * 12), 50, id="common trigrams repeated as words"),
        pytest.param(("abc" * 67)[:200], 0, id="one word of repeated trigrams"),
        pytest.param("İ" * 200, 0, id="a word that lower-cases to twice its length"),
        pytest.param("sun sunset set nse", 50, id="words inside a longer word count once"),
        pytest.param("% _ \\ %_", 1, id="LIKE's special characters are plain characters"),
    ],
)
async def test_pathological_searches_within_the_limits_answer(api: Api, text: str, found: int) -> None:
    with anyio.fail_after(WAIT):
        body = await api.ok("POST", "/files/search", json={"search": text})
    assert len(body["files"]) == found


async def test_special_characters_find_only_the_names_that_hold_them(api: Api, seeded: Seeded) -> None:
    for text in ("%", "_", "\\", "%_", "_o", "f\\s", "100%_off\\sale"):
        body = await api.ok("POST", "/files/search", json={"search": text})
        assert [f["id"] for f in body["files"]] == [seeded.sale_id], text


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a b c d e f g h i j k l m n o p q", id="one-letter words"),
        pytest.param("ab ac ad ae af ag ah ai aj ak al am an ao ap aq ar", id="two-letter words"),
        pytest.param(" ".join(WORDS) + " jpg jpeg image holiday summer winter spring", id="longer words"),
    ],
)
@pytest.mark.parametrize("path", ["/files/search", "/folders/search"])
async def test_a_search_with_too_many_words_is_refused_up_front(api: Api, text: str, path: str) -> None:
    violation = _violation(await api.call("POST", path, json={"search": text}))
    assert violation["field"] == "search"
    assert violation["ruleName"] == "SEARCH_TOO_COMPLEX"
    assert "the search has 17 different words" in violation["description"]
    assert LIMITS in violation["description"]


async def test_folder_search_folds_case_and_bounds_its_words(api: Api) -> None:
    found = await api.ok("POST", "/folders/search", json={"search": "STRASSE"})
    assert [f["displayName"] for f in found["folders"]] == ["Straße"]
    flood = await api.ok("POST", "/folders/search", json={"search": "ß" * 200})  # case-folds to 400 characters
    assert flood["folders"] == []
    repeated = await api.ok("POST", "/folders/search", json={"search": " ".join(["a"] * 99 + ["zq"])})
    assert repeated["folders"] == []


# --- time: a budget, then a clear refusal --------------------------------------------------------


@pytest.mark.parametrize(("path", "key"), [("/files/search", "files"), ("/folders/search", "folders")])
async def test_a_search_over_its_time_budget_is_refused_and_the_next_one_runs(
    api: Api, monkeypatch: pytest.MonkeyPatch, path: str, key: str
) -> None:
    # a budget no scan of thousands of rows fits in: stopped at SQLite's first look at the clock
    monkeypatch.setattr(api.library.settings, "library_search_budget_seconds", 1e-9)
    error = _refusal(await api.call("POST", path, json={"search": "zq"}))
    assert error["code"] == "SEARCH_TOO_BROAD"
    assert "too broad" in error["description"]
    assert "Add words of three or more characters" in error["description"]
    monkeypatch.undo()
    assert (await api.ok("POST", path, json={"search": "zq"}))[key] == []  # the stopped reader is fine again
    assert len((await api.ok("POST", path, json={"search": "sunset"}))[key]) == 50


# --- cursors: what a forged one carries is bounded too ----------------------------------------------


def _cursor(kind: str, search: Any, media_types: list[str] | None = None, scope: str = "root") -> str:
    target = "MEDIA_ROOT" if scope == "root" else "media-root"
    query = {"k": kind, "s": scope, "t": target, "f": "updatedDate", "d": True, "m": media_types or [], "p": None}
    raw = json.dumps({"q": {**query, "q": search}, "a": [START + 10**6, "some-id"]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _listings(cursor: str, kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every listing of ``kind`` a cursor can be sent to: (method, path, request options)."""
    trash = "/trash-bin/files" if kind == "files" else "/trash-bin/folders"
    return [
        ("POST", f"/{kind}/search", {"json": {"paging": {"cursor": cursor}}}),
        ("GET", f"/{kind}", {"params": {"paging.cursor": cursor}}),
        ("GET", trash, {"params": {"paging.cursor": cursor}}),
    ]


@pytest.mark.parametrize("kind", ["files", "folders"])
async def test_a_huge_search_in_a_forged_cursor_is_a_clear_400(api: Api, kind: str) -> None:
    huge = " ".join(f"w{i % 97}" for i in range(2500))  # thousands of short words, one SQL condition each once
    many = "a b c d e f g h i j k l m n o p q"
    cases = [(huge, "SEARCH_TOO_LONG", f"has {len(huge)} characters"), (many, "SEARCH_TOO_COMPLEX", "has 17")]
    for text, code, said in cases:
        for method, path, options in _listings(_cursor(kind, text), kind):
            violation = _violation(await api.call(method, path, **options))
            assert violation["field"] == "paging.cursor", path
            assert violation["ruleName"] == code, path
            assert said in violation["description"]
            assert LIMITS in violation["description"]


@pytest.mark.parametrize(
    ("kind", "search", "media_types"),
    [
        pytest.param("files", ["not", "text"], None, id="a search that is not text"),
        pytest.param("files", {"a": 1}, None, id="a search that is an object"),
        pytest.param("files", None, ["FLASH"], id="an unknown media type"),
        pytest.param("folders", None, ["IMAGE"], id="a media type on folders"),
    ],
)
async def test_a_cursor_with_filters_no_listing_issues_is_refused(
    api: Api, kind: str, search: Any, media_types: list[str] | None
) -> None:
    for method, path, options in _listings(_cursor(kind, search, media_types), kind):
        violation = _violation(await api.call(method, path, **options))
        assert violation["field"] == "paging.cursor", path
        assert violation["description"] == "the cursor is not one this listing issued"


async def test_a_cursor_the_library_issued_for_a_search_pages_on(api: Api) -> None:
    first = await api.ok("POST", "/files/search", json={"search": "sun set", "paging": {"limit": 30}})
    cursor = first["nextCursor"]["cursors"]["next"]
    second = await api.ok("POST", "/files/search", json={"paging": {"cursor": cursor, "limit": 30}})
    assert len(second["files"]) == 30
    assert not {f["id"] for f in first["files"]} & {f["id"] for f in second["files"]}
    assert all("sunset" in f["displayName"] for f in first["files"] + second["files"])


# --- isolation: a slow search holds up nobody else ----------------------------------------------


class Hold:
    """Holds the next ``count`` page reads inside the store (in `FileRow.all_from`, within their read) until
    `release`: a search that is slow for as long as the test wants."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
        self.holds = self.left = count
        self.count = threading.Lock()
        self.entered = threading.Semaphore(0)
        self.released = threading.Event()
        original: Callable[[sqlite3.Cursor], list[FileRow]] = FileRow.all_from

        def all_from(cls: type[FileRow], cursor: sqlite3.Cursor) -> list[FileRow]:
            with self.count:
                held, self.left = self.left > 0, max(0, self.left - 1)
            if held:
                self.entered.release()
                self.released.wait(WAIT)
            return original(cursor)

        monkeypatch.setattr(FileRow, "all_from", classmethod(all_from))

    async def wait_entered(self, count: int) -> bool:
        """Whether ``count`` reads are held now (False if they did not all get there in time)."""

        def wait() -> bool:
            return all(self.entered.acquire(timeout=WAIT) for _ in range(count))

        return await anyio.to_thread.run_sync(wait)

    def release(self) -> None:
        self.released.set()


async def _get_file_while_held(api: Api, file_id: str, hold: Hold, searches: int) -> None:
    """Start ``searches`` searches, wait until `Hold` has as many as it can hold, then call get_file."""
    answers: list[httpx.Response] = []
    got: list[httpx.Response] = []
    answered = anyio.Event()

    async def search() -> None:
        answers.append(await api.call("POST", "/files/search", json={}))

    async def get_file() -> None:
        got.append(await api.call("GET", "/files/get-file-by-id", params={"fileId": file_id}))
        answered.set()

    with anyio.fail_after(4 * WAIT):
        async with anyio.create_task_group() as tg:
            try:
                for _ in range(searches):
                    tg.start_soon(search)
                assert await hold.wait_entered(hold.holds), "the searches did not all get into the store at once"
                tg.start_soon(get_file)
                with anyio.move_on_after(HELD):
                    await answered.wait()
                stalled = not answered.is_set()
            finally:
                hold.release()
    assert not stalled, "get_file waited for a search held in the store"
    assert got[0].status_code == 200, got[0].text
    assert got[0].json()["file"]["id"] == file_id
    assert [a.status_code for a in answers] == [200] * searches


async def test_a_held_search_does_not_stall_get_file(api: Api, seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    await _get_file_while_held(api, seeded.photo_id, Hold(monkeypatch, 1), searches=1)


async def test_more_held_searches_than_search_threads_do_not_stall_get_file(
    api: Api, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the searches past SEARCH_THREADS wait for a thread of their own; get_file still finds one
    await _get_file_while_held(api, seeded.photo_id, Hold(monkeypatch, SEARCH_THREADS), searches=SEARCH_THREADS + 2)
