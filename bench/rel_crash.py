"""Crash harness: SIGKILL the embedded library in the middle of its writes, restart it, and check what it kept.

A ``media-mcp library`` subprocess serves a fresh data directory on 127.0.0.1. Each crash begins one operation:

* ``put``: a plain upload of a few MB through a minted link, its body sent over a raw socket in slices;
* ``tus``: a resumable upload with some PATCHes done, then a PATCH cut mid-body (or the final ``PUT`` cut);
* ``trash``: one bulk trash of many files, or of folders that hold them;
* ``restore``: one bulk restore of such a set;

and kills the library with SIGKILL at a point chosen (seeded) from the request's own progress, never from the
clock: a byte offset of the body that the library has already written to disk, a stage its files show (the
upload fully received, its blob hard-linked, the source unlinked once the row committed, the WAL written), or
its answer. The library is then restarted on the same directory and checked:

* SQLite ``integrity_check`` (and the FTS5 index's) on a copy of the database as the crash left it, and again
  through a separate read-only connection after the restart;
* no half state in the tree: a row is either fully in the trash or fully out of it, and one bulk call is all
  or nothing (a call that was answered 200 must have happened);
* search lists only complete files: every listed file's bytes (downloaded) match a source's sha256, nothing
  cut mid-body is listed, every upload answered 200 is listed exactly once and intact;
* no leftovers: ``incoming/`` empty, no blob or ``.part`` without its row, no row without its blob;
* an interrupted resumable upload resumes from ``HEAD``'s offset and completes byte-identical; a plain upload
  whose answer was lost either committed (and is listed, intact) or can be sent again with the same link.

``python -m bench.rel_crash --crashes 20 --seed 1`` prints the figures; `run` returns them.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import json
import os
import queue
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from media_mcp.library.blobs import BLOCK
from media_mcp.wix.models import MEDIA_ROOT_ID, TRASH_ROOT_ID

HOST = "127.0.0.1"
API = "/site-media/v1"
WAIT = 30.0
"""The bound on every wait: a start-up, an answer, a stage the library should reach."""
POLL = 0.0005
"""Between two looks at the library's files, wait this long for its answer (select on the socket)."""
MIB = 1024 * 1024
DOWNLOADERS = 8
"""Requests in flight at once when the harness uploads its pool or checks every listed file."""
OCTETS = "application/octet-stream"
TUS = {"Tus-Resumable": "1.0.0"}
TUS_CHUNK = MIB
WRITE_SLACK = 64 * 1024
"""A tus PATCH is written through a buffered file: this much may still sit in the library's buffer."""

KINDS = ("put", "tus", "trash", "restore")
PHASES = {
    "put": ("body", "received", "linked", "committed", "answered"),
    "tus": ("patch", "between", "finish-linked", "finish-committed", "finish-answered"),
    "trash": ("body", "sent", "wal", "answered"),
    "restore": ("body", "sent", "wal", "answered"),
}
FAILURES = (
    "integrity_failures",
    "partial_visible",
    "uploads_lost",
    "half_state",
    "duplicates",
    "leftovers",
    "not_resumed",
    "died_on_its_own",
)
"""What must stay at zero."""

# Stages of the one file an upload makes (in incoming/ for a PUT, resumable/<id>.part for tus), in order.
WAITING, GROWING, LINKED, GONE = 0, 1, 2, 3
STAGE_NAMES = {WAITING: "waiting", GROWING: "receiving", LINKED: "linked", GONE: "committed"}

HALF_STATE_SQL = {
    "a file OK yet in the trash or marked as trashed": (
        "SELECT count(*) FROM files WHERE state = 'OK'"
        " AND (parent_id = 'trash-root' OR trash_parent IS NOT NULL OR trashed_by IS NOT NULL)"
    ),
    "a file DELETED but neither in trash-root nor taken along by a trashed folder": (
        "SELECT count(*) FROM files AS f WHERE state = 'DELETED' AND NOT ("
        " (parent_id = 'trash-root' AND trashed_by IS NULL AND trash_parent IS NOT NULL)"
        " OR (parent_id != 'trash-root' AND trashed_by IS NOT NULL"
        "     AND EXISTS (SELECT 1 FROM folders AS d WHERE d.id = f.trashed_by AND d.state = 'DELETED')))"
    ),
    "a file OK inside a trashed folder": (
        "SELECT count(*) FROM files AS f JOIN folders AS d ON d.id = f.parent_id"
        " WHERE f.state = 'OK' AND d.state = 'DELETED'"
    ),
    "a folder OK yet in the trash or marked as trashed": (
        "SELECT count(*) FROM folders WHERE state = 'OK'"
        " AND (parent_id = 'trash-root' OR trash_parent IS NOT NULL OR trashed_by IS NOT NULL)"
    ),
    "a folder DELETED but neither in trash-root nor taken along by a trashed folder": (
        "SELECT count(*) FROM folders AS c WHERE state = 'DELETED' AND NOT ("
        " (parent_id = 'trash-root' AND trashed_by IS NULL AND trash_parent IS NOT NULL)"
        " OR (parent_id != 'trash-root' AND trashed_by IS NOT NULL"
        "     AND EXISTS (SELECT 1 FROM folders AS d WHERE d.id = c.trashed_by AND d.state = 'DELETED')))"
    ),
    "a folder OK inside a trashed folder": (
        "SELECT count(*) FROM folders AS c JOIN folders AS d ON d.id = c.parent_id"
        " WHERE c.state = 'OK' AND d.state = 'DELETED'"
    ),
    "a READY file without a blob": "SELECT count(*) FROM files WHERE status = 'READY' AND blob IS NULL",
    "a file row without its search entry, or the reverse": (
        "SELECT (SELECT count(*) FROM files WHERE seq NOT IN (SELECT rowid FROM files_text))"
        " + (SELECT count(*) FROM files_text WHERE rowid NOT IN (SELECT seq FROM files))"
    ),
}


class HarnessError(Exception):
    """The harness could not drive the library (it did not start, answered an unexpected error, ...)."""


# --- sources -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Bytes to upload, regenerated from a seed when needed; known by a unique display name."""

    name: str
    seed: int
    size: int
    sha256: str
    md5: str

    @classmethod
    def make(cls, name: str, seed: int, size: int) -> Source:
        data = random.Random(seed).randbytes(size)
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return cls(name=name, seed=seed, size=size, sha256=hashlib.sha256(data).hexdigest(), md5=md5)

    def data(self) -> bytes:
        return random.Random(self.seed).randbytes(self.size)


# --- the library as a child process ------------------------------------------------------------


class LibraryProcess:
    """``media-mcp library`` on ``data_dir`` and port 0; its address comes from its stderr announcement."""

    ANNOUNCE = "serving the Wix Media REST API at "

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.base = ""
        self.api_key = ""
        self.log: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "library.sqlite3"

    @property
    def wal_path(self) -> Path:
        return self.data_dir / "library.sqlite3-wal"

    @property
    def incoming(self) -> Path:
        return self.data_dir / "incoming"

    @property
    def resumable(self) -> Path:
        return self.data_dir / "resumable"

    @property
    def blobs(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self._proc is not None:
            raise HarnessError("the library is already running")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIA_MCP_")}
        command = [sys.executable, "-m", "media_mcp", "library", "--data-dir", str(self.data_dir)]
        self._lines = queue.Queue()
        proc = subprocess.Popen(
            [*command, "--host", HOST, "--port", "0"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._proc = proc
        self._reader = threading.Thread(target=_read_lines, args=(proc, self._lines), daemon=True)
        self._reader.start()
        try:
            line = self._wait_for_line(self.ANNOUNCE)
            self.base = line.split(self.ANNOUNCE, 1)[1].strip().removesuffix(API)
            self.api_key = (self.data_dir / "api_key").read_text().strip()
            # the socket listens before the announcement: this request waits in its backlog, not in a retry loop
            with httpx.Client(timeout=WAIT, trust_env=False) as probe:
                health = probe.get(f"{self.base}/healthz")
            if health.status_code != 200:
                raise HarnessError(f"/healthz answered {health.status_code}")
        except BaseException:
            self.kill()
            raise

    def _wait_for_line(self, contains: str) -> str:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise HarnessError(f"the library did not announce itself in {WAIT:.0f}s:\n{self.tail()}") from None
            if line is None:
                raise HarnessError(f"the library exited while starting:\n{self.tail()}")
            self.log.append(line)
            if contains in line:
                return line

    def kill(self) -> bool:
        """SIGKILL; True if the library was still running (False: it had died on its own)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return False
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(WAIT)
        self._collect(proc)
        return alive

    def stop(self) -> None:
        """SIGINT, the clean way; SIGKILL if it does not stop in time."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(WAIT)
        self._collect(proc)

    def _collect(self, proc: subprocess.Popen[str]) -> None:
        if self._reader is not None:
            self._reader.join(WAIT)
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.log.append(line)
        if proc.stderr is not None:
            proc.stderr.close()

    def tail(self, lines: int = 30) -> str:
        return "".join(self.log[-lines:])


def _read_lines(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.put(line)
    lines.put(None)


# --- HTTP: the API through httpx, the requests to cut through a raw connection --------------------


class RawRequest:
    """One request whose body is sent by hand, so that it can stop anywhere; its answer read if it came."""

    def __init__(self, method: str, url: str, length: int, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=WAIT)
        self.conn.putrequest(method, parts.path + (f"?{parts.query}" if parts.query else ""), skip_accept_encoding=True)
        for name, value in headers.items():
            self.conn.putheader(name, value)
        self.conn.putheader("Content-Length", str(length))
        self.conn.endheaders()
        self.sent = 0

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        for start in range(0, len(view), 256 * 1024):
            self.conn.send(view[start : start + 256 * 1024])
        self.sent += len(data)

    def answered(self, wait: float) -> bool:
        """Has anything come back (the answer, or the connection closing)? Waits up to ``wait`` seconds."""
        sock = self.conn.sock
        if sock is None:
            return True
        readable, _, _ = select.select([sock], [], [], wait)
        return bool(readable)

    def answer(self) -> tuple[int, bytes] | None:
        """The status and body, if a whole answer arrived; None if the connection died first."""
        try:
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            return None
        finally:
            self.conn.close()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Api:
    """The library's REST API, upload links and tus endpoints, at its current address."""

    def __init__(self, lib: LibraryProcess) -> None:
        self.base = lib.base
        self.auth = {"Authorization": lib.api_key}
        self.http = httpx.Client(base_url=lib.base, timeout=WAIT, trust_env=False)

    def close(self) -> None:
        self.http.close()

    def rebase(self, url: str) -> str:
        """A link minted before a restart, pointed at the library's new port."""
        parts = urlsplit(url)
        return self.base + parts.path + (f"?{parts.query}" if parts.query else "")

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.request(method, API + path, json=body, headers=self.auth)
        if response.status_code != 200:
            raise HarnessError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        answer: dict[str, Any] = response.json()
        return answer

    def create_folder(self, name: str, parent: str) -> str:
        folder_id: str = self.call("POST", "/folders", {"displayName": name, "parentFolderId": parent})["folder"]["id"]
        return folder_id

    def folder(self, folder_id: str) -> dict[str, Any]:
        folder: dict[str, Any] = self.call("GET", f"/folders/{folder_id}")["folder"]
        return folder

    def mint_put(self, src: Source, parent: str, declare_size: bool) -> str:
        body: dict[str, Any] = {"mimeType": OCTETS, "fileName": src.name, "parentFolderId": parent}
        if declare_size:
            body["sizeInBytes"] = str(src.size)
        url: str = self.call("POST", "/files/generate-upload-url", body)["uploadUrl"]
        return url

    def put(self, url: str, data: bytes) -> httpx.Response:
        return self.http.put(self.rebase(url), content=data, headers={"Content-Type": OCTETS})

    def mint_tus(self, src: Source, parent: str) -> tuple[str, str]:
        body = {"mimeType": OCTETS, "fileName": src.name, "parentFolderId": parent, "sizeInBytes": str(src.size)}
        minted = self.call("POST", "/files/generate-resumable-upload-url", body)
        return str(minted["uploadUrl"]), str(minted["uploadToken"])

    def tus_create(self, url: str, token: str, src: Source) -> str:
        headers = {
            **TUS,
            "Upload-Length": str(src.size),
            "Upload-Metadata": f"token {_b64(token)},filename {_b64(src.name)}",
        }
        response = self.http.post(self.rebase(url), headers=headers)
        if response.status_code != 201:
            raise HarnessError(f"tus create answered {response.status_code}: {response.text[:300]}")
        return response.headers["location"]

    def tus_head(self, location: str) -> int | None:
        response = self.http.head(self.rebase(location), headers=TUS)
        return int(response.headers["upload-offset"]) if response.status_code == 200 else None

    def tus_patch(self, location: str, offset: int, data: bytes) -> int:
        headers = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)}
        response = self.http.patch(self.rebase(location), content=data, headers=headers)
        if response.status_code != 204:
            raise HarnessError(f"tus PATCH answered {response.status_code}: {response.text[:300]}")
        return int(response.headers["upload-offset"])

    def tus_finish(self, url: str, token: str) -> httpx.Response:
        return self.http.put(self.rebase(f"{url}/{token}"))

    def search_all(self, root: str) -> list[dict[str, Any]]:
        files: list[dict[str, Any]] = []
        paging: dict[str, Any] = {"limit": 100}
        while True:
            page = self.call("POST", "/files/search", {"rootFolder": root, "paging": paging})
            files += page["files"]
            cursor = page.get("nextCursor", {}).get("cursors", {}).get("next")
            if not cursor:
                return files
            paging = {"limit": 100, "cursor": cursor}

    def download_sha256(self, file_id: str) -> str:
        """The sha256 of the file's bytes through a minted download link; '' if it could not be fetched."""
        minted = self.http.post(API + "/files/generate-file-download-url", json={"fileId": file_id}, headers=self.auth)
        if minted.status_code != 200:
            return ""
        digest = hashlib.sha256()
        with self.http.stream("GET", self.rebase(minted.json()["downloadUrls"][0]["url"])) as response:
            if response.status_code != 200:
                return ""
            for block in response.iter_bytes(MIB):
                digest.update(block)
        return digest.hexdigest()


# --- what the library's files show ----------------------------------------------------------------


class Watched:
    """The one file an upload makes, as the library moves it on: growing, hard-linked as a blob, unlinked.

    A plain upload's file appears in ``incoming/`` under a random name (found as the only entry there); a
    resumable upload's is its ``.part``. Its link count turns 2 when the blob is linked (the row not yet
    committed), and it goes once the row has committed.
    """

    def __init__(self, directory: Path | None = None, path: Path | None = None) -> None:
        self.directory = directory
        self.path = path

    def look(self) -> tuple[int, int]:
        """(stage, bytes on disk)."""
        if self.path is None:
            assert self.directory is not None
            entries = os.listdir(self.directory)
            if not entries:
                return WAITING, 0
            self.path = self.directory / entries[0]
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return GONE, 0
        return (LINKED if st.st_nlink >= 2 else GROWING), st.st_size

    def stage_name(self, total: int) -> str:
        stage, size = self.look()
        if stage == GROWING:
            return "received" if size >= total else "body"
        return STAGE_NAMES[stage]


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return 0, 0
    return st.st_size, st.st_mtime_ns


# --- the run ------------------------------------------------------------------------------------------


@dataclass
class PoolTarget:
    """What one bulk call works on: some pool files, or some top-level pool folders (and all they hold)."""

    files: list[str]
    folders: list[str]


class CrashRun:
    """One data directory, a pool of small files in folders, and a series of crashes with checks after each."""

    def __init__(self, work: Path, seed: int, pool_size: int = 120) -> None:
        self.work = work
        self.rng = random.Random(seed)
        self.pool_size = pool_size
        self.lib = LibraryProcess(work / "data")
        self._api: Api | None = None
        self.sources: dict[str, Source] = {}
        self.completed: dict[str, str] = {}
        """Uploads known to have committed (answered 200, or found listed and intact): name -> file id."""
        self.uncertain: set[str] = set()
        """Uploads whose whole body was sent but whose answer was lost: they may or may not have committed."""
        self.cut: set[str] = set()
        """Uploads whose body never fully reached the library: they must not be listed."""
        self.pool_home: dict[str, str] = {}
        self.folder_home: dict[str, str] = {}
        self.top_folders: list[str] = []
        self.file_state: dict[str, tuple[str, str]] = {}
        self.folder_state: dict[str, tuple[str, str]] = {}
        self.verified: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.kill_points: Counter[str] = Counter()
        self.landed: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self._label = ""
        self.problems: list[str] = []
        self.notes: list[str] = []
        self._serial = 0

    @property
    def api(self) -> Api:
        if self._api is None:
            raise HarnessError("the library is not running")
        return self._api

    def fail(self, category: str, message: str) -> None:
        assert category in FAILURES, category
        self.failures[category] += 1
        self.problems.append(f"[crash {self.counts['crashes']}] {category}: {message}")

    def new_source(self, prefix: str, size: int) -> Source:
        self._serial += 1
        src = Source.make(f"crash-{prefix}-{self._serial:03d}.bin", self.rng.getrandbits(63), size)
        self.sources[src.name] = src
        return src

    def outcome(self, text: str) -> None:
        """How the current crash ended for the client (for the report)."""
        self.outcomes[f"{self._label} -> {text}"] += 1

    # --- start, restart, stop ---

    def _start(self) -> None:
        self.lib.start()
        self._api = Api(self.lib)

    def _kill(self, label: str, landed: str) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
        if not self.lib.kill():
            self.fail("died_on_its_own", f"the library had exited before the kill ({label}):\n{self.lib.tail()}")
        self.kill_points[label] += 1
        self.landed[f"{label.split(':')[0]}:{landed}"] += 1

    def restart_and_check(self) -> None:
        self._check_stopped_db()
        self._start()
        self._check_live_db()
        self._audit()

    def setup(self) -> None:
        self.lib.data_dir.mkdir(parents=True)
        self._start()
        top = [self.api.create_folder(f"crash-pool-{c}", MEDIA_ROOT_ID) for c in "ABC"]
        inner = self.api.create_folder("crash-pool-A1", top[0])
        self.top_folders = top
        self.folder_home = {top[0]: MEDIA_ROOT_ID, top[1]: MEDIA_ROOT_ID, top[2]: MEDIA_ROOT_ID, inner: top[0]}
        homes = [*top, inner]
        sources = [self.new_source("pool", self.rng.randint(1024, 16 * 1024)) for _ in range(self.pool_size)]
        self.pool_home = {src.name: homes[i % len(homes)] for i, src in enumerate(sources)}

        def upload(src: Source) -> str:
            response = self.api.put(self.api.mint_put(src, self.pool_home[src.name], declare_size=True), src.data())
            if response.status_code != 200:
                raise HarnessError(f"pool upload answered {response.status_code}: {response.text[:300]}")
            file_id: str = response.json()["file"]["id"]
            return file_id

        with ThreadPoolExecutor(DOWNLOADERS) as pool:
            self.completed.update(zip([s.name for s in sources], pool.map(upload, sources), strict=True))
        self._audit()

    def stop(self) -> None:
        """Stop the library the clean way (SIGINT)."""
        if self._api is not None:
            self._api.close()
            self._api = None
        self.lib.stop()

    def finish(self) -> None:
        """A clean stop and one more start: everything acknowledged is still there, intact."""
        self.stop()
        self.restart_and_check()
        self.counts["uploads_acked"] = len(self.completed)
        self.counts["uploads_intact"] = len(self.verified & set(self.completed))
        self.stop()

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
        if self.lib.running:
            self.lib.kill()

    # --- one crash ---

    def crash(self, kind: str, phase: str) -> None:
        before = len(self.problems)
        self.counts["crashes"] += 1
        self._label = f"{kind}:{phase}"
        {"put": self._crash_put, "tus": self._crash_tus, "trash": self._crash_trash, "restore": self._crash_restore}[
            kind
        ](phase)
        if len(self.problems) == before:
            self.counts["recovered"] += 1

    def _wait(self, raw: RawRequest, reached: Callable[[], bool], what: str) -> None:
        """Until ``reached()`` or the library answers (it is then past every stage); bounded by WAIT."""
        deadline = time.monotonic() + WAIT
        while not reached():
            if raw.answered(POLL):
                return
            if time.monotonic() > deadline:
                raise HarnessError(f"the library did not reach {what} within {WAIT:.0f}s:\n{self.lib.tail()}")

    def _crash_put(self, phase: str) -> None:
        src = self.new_source("put", self.rng.randint(2 * MIB, 6 * MIB))
        url = self.api.mint_put(src, MEDIA_ROOT_ID, declare_size=self.rng.random() < 0.5)
        data = src.data()
        watched = Watched(directory=self.lib.incoming)
        raw = RawRequest("PUT", url, src.size, {"Content-Type": OCTETS})
        if phase == "body":
            cut = self.rng.randrange(1, src.size)
            raw.send(data[:cut])

            def on_disk() -> bool:
                stage, size = watched.look()
                return stage > GROWING or (stage == GROWING and size >= cut - BLOCK)

            self._wait(raw, on_disk, f"{cut - BLOCK} bytes of the body on disk")
        else:
            raw.send(data)
            target = {"received": GROWING, "linked": LINKED, "committed": GONE, "answered": GONE + 1}[phase]

            def stage_reached() -> bool:
                stage, size = watched.look()
                return stage > target or (stage == target and (stage != GROWING or size >= src.size))

            self._wait(raw, stage_reached, f"the upload's {phase} stage")
        answer = raw.answer() if phase == "answered" else None
        landed = "answered" if answer else watched.stage_name(src.size)
        self._kill(f"put:{phase}", landed)
        answer = answer or raw.answer()
        self._settle_upload(src, answer, whole_body=phase != "body")
        answered = src.name in self.completed
        self.restart_and_check()
        if answered:
            self.outcome("answered 200")
        elif src.name in self.completed:
            self.outcome("committed, answer lost")
        else:
            self._send_again(src, url)

    def _settle_upload(self, src: Source, answer: tuple[int, bytes] | None, *, whole_body: bool) -> None:
        """Before the restart: what the client knows of this upload."""
        if answer is not None and answer[0] == 200:
            self.completed[src.name] = json.loads(answer[1])["file"]["id"]
        elif whole_body:
            self.uncertain.add(src.name)
        else:
            self.cut.add(src.name)

    def _send_again(self, src: Source, url: str) -> None:
        """The upload did not commit: its link takes the whole body again (the dead request's claim is gone)."""
        self.cut.discard(src.name)
        self.uncertain.discard(src.name)
        response = self.api.put(url, src.data())
        if response.status_code == 200:
            self.completed[src.name] = response.json()["file"]["id"]
            self.counts["retried_ok"] += 1
            self.outcome("not committed, sent again")
            if not self._verify(src.name):
                self.fail("uploads_lost", f"{src.name}: sent again, but its bytes differ from the source")
        else:
            self.fail("uploads_lost", f"{src.name}: not listed, and its link answered {response.status_code}")

    def _crash_tus(self, phase: str) -> None:
        src = self.new_source("tus", self.rng.randint(2 * MIB, 6 * MIB))
        url, token = self.api.mint_tus(src, MEDIA_ROOT_ID)
        location = self.api.tus_create(url, token, src)
        part = Watched(path=self.lib.resumable / f"{location.rsplit('/', 1)[1]}.part")
        data = src.data()
        self.counts["tus_interrupted"] += 1
        if phase in ("patch", "between"):
            window = self._cut_transfer(src, location, part, data, phase)
            self.restart_and_check()
            self._resume(src, url, token, location, window)
            return
        offset = 0
        while offset < src.size:
            offset = self.api.tus_patch(location, offset, data[offset : offset + TUS_CHUNK])
        raw = RawRequest("PUT", f"{url}/{token}", 0, {})
        target = {"finish-linked": LINKED, "finish-committed": GONE, "finish-answered": GONE + 1}[phase]
        self._wait(raw, lambda: part.look()[0] >= target, f"the finishing {phase}")
        answer = raw.answer() if phase == "finish-answered" else None
        self._kill(f"tus:{phase}", "answered" if answer else "finish-" + part.stage_name(src.size))
        answer = answer or raw.answer()
        self._settle_upload(src, answer, whole_body=True)
        answered = src.name in self.completed
        self.restart_and_check()
        if src.name in self.completed:
            self.outcome("answered 200" if answered else "committed, answer lost")
            if self._verify(src.name):
                self.counts["resumed_ok"] += 1
            else:
                self.fail("uploads_lost", f"{src.name}: committed, but its bytes differ from the source")
            return
        self.outcome("not committed, finished again")
        self.uncertain.discard(src.name)
        offset_now = self.api.tus_head(location)
        if offset_now != src.size:
            self.fail("not_resumed", f"{src.name}: finished transfer not committed, HEAD offset {offset_now}")
            return
        self._finish_tus(src, url, token)

    def _cut_transfer(self, src: Source, location: str, part: Watched, data: bytes, phase: str) -> tuple[int, int]:
        """Some whole PATCHes, then SIGKILL: between two PATCHes, or while one is part-way through its body.

        Returns the bytes acknowledged (204) and the bytes sent: the offset after the restart lies between.
        """
        full_chunks = src.size // TUS_CHUNK  # the cut PATCH is a whole chunk, so the cut lands inside it
        done = self.rng.randrange(1 if phase == "between" else 0, full_chunks)
        offset = 0
        for _ in range(done):
            offset = self.api.tus_patch(location, offset, data[offset : offset + TUS_CHUNK])
        acked = offset
        if phase == "between":
            self._kill("tus:between", "between PATCHes")
            return acked, acked
        cut = self.rng.randrange(2 * WRITE_SLACK, TUS_CHUNK)
        headers = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(acked)}
        raw = RawRequest("PATCH", location, TUS_CHUNK, headers)
        raw.send(data[acked : acked + cut])
        self._wait(raw, lambda: part.look()[1] >= acked + cut - WRITE_SLACK, "the PATCH's bytes on disk")
        on_disk = part.look()[1] - acked
        self._kill("tus:patch", "mid-PATCH, all sent bytes on disk" if on_disk >= cut else "mid-PATCH, some on disk")
        if raw.answer() is not None:
            self.notes.append(f"{src.name}: the cut PATCH was answered")
        return acked, acked + cut

    def _resume(self, src: Source, url: str, token: str, location: str, window: tuple[int, int]) -> None:
        acked, sent = window
        offset = self.api.tus_head(location)
        if offset is None:
            self.fail("not_resumed", f"{src.name}: the transfer was forgotten (HEAD 404) after {acked} bytes")
            return
        if not acked <= offset <= sent:
            self.fail("not_resumed", f"{src.name}: HEAD offset {offset} outside [{acked}, {sent}]")
            return
        self.outcome(
            "resumed at the acknowledged offset" if offset == acked else "resumed past the acknowledged offset"
        )
        data = src.data()
        while offset < src.size:
            offset = self.api.tus_patch(location, offset, data[offset : offset + 4 * TUS_CHUNK])
        self._finish_tus(src, url, token)

    def _finish_tus(self, src: Source, url: str, token: str) -> None:
        response = self.api.tus_finish(url, token)
        if response.status_code != 200:
            self.fail("not_resumed", f"{src.name}: the final PUT answered {response.status_code}: {response.text}")
            return
        self.completed[src.name] = response.json()["file"]["id"]
        if self._verify(src.name):
            self.counts["resumed_ok"] += 1
        else:
            self.fail("not_resumed", f"{src.name}: resumed, but its bytes differ from the source")

    def _verify(self, name: str) -> bool:
        ok = self.api.download_sha256(self.completed[name]) == self.sources[name].sha256
        if ok:
            self.verified.add(name)
        return ok

    # --- bulk trash and restore ---

    def _pick(self) -> PoolTarget:
        if self.rng.random() < 0.5:
            names = sorted(self.pool_home)
            return PoolTarget(files=self.rng.sample(names, self.rng.randint(len(names) // 2, len(names))), folders=[])
        return PoolTarget(files=[], folders=self.rng.sample(self.top_folders, self.rng.randint(1, 3)))

    def _bulk_call(self, target: PoolTarget, trash: bool) -> tuple[str, dict[str, Any]]:
        if target.files:
            ids = [self.completed[n] for n in target.files]
            return ("/bulk/files/delete" if trash else "/bulk/trash-bin/files/restore"), {"fileIds": ids}
        path = "/bulk/folders/delete" if trash else "/bulk/trash-bin/folders/restore"
        return path, {"folderIds": target.folders}

    def _normalize_pool(self) -> None:
        """Everything in the pool back where it belongs (folders first: a file restored into a trashed folder
        would move to the top level)."""
        trashed = [f for f in self.top_folders if self.folder_state[f][0] == "DELETED"]
        if trashed:
            self.api.call("POST", "/bulk/trash-bin/folders/restore", {"folderIds": trashed})
        direct = [self.completed[n] for n in self.pool_home if self.file_state.get(n, ("", ""))[1] == TRASH_ROOT_ID]
        if direct:
            self.api.call("POST", "/bulk/trash-bin/files/restore", {"fileIds": direct})

    def _crash_trash(self, phase: str) -> None:
        self._normalize_pool()
        target = self._pick()
        self._bulk_with_kill("trash", target, trash=True, phase=phase)

    def _crash_restore(self, phase: str) -> None:
        self._normalize_pool()
        target = self._pick()
        path, body = self._bulk_call(target, trash=True)
        self.api.call("POST", path, body)
        self._bulk_with_kill("restore", target, trash=False, phase=phase)

    def _bulk_with_kill(self, kind: str, target: PoolTarget, *, trash: bool, phase: str) -> None:
        path, body = self._bulk_call(target, trash)
        payload = json.dumps(body).encode()
        headers = {"Authorization": self.lib.api_key, "Content-Type": "application/json"}
        raw = RawRequest("POST", self.lib.base + API + path, len(payload), headers)
        before = _stamp(self.lib.wal_path)
        if phase == "body":
            raw.send(payload[: self.rng.randrange(0, len(payload))])
        else:
            raw.send(payload)
        if phase == "wal":
            self._wait(raw, lambda: _stamp(self.lib.wal_path) != before, "a WAL write")
        answer = raw.answer() if phase == "answered" else None
        landed = "answered" if answer else ("wal written" if _stamp(self.lib.wal_path) != before else "no write yet")
        self._kill(f"{kind}:{phase}", landed)
        answer = answer or raw.answer()
        self.restart_and_check()
        self._check_bulk(kind, target, "DELETED" if trash else "OK", answered=answer is not None and answer[0] == 200)

    def _affected(self, target: PoolTarget) -> list[str]:
        if target.files:
            return target.files
        chosen = set(target.folders)
        return [n for n, home in self.pool_home.items() if home in chosen or self.folder_home[home] in chosen]

    def _check_bulk(self, kind: str, target: PoolTarget, after: str, *, answered: bool) -> None:
        """One bulk call is one transaction: all of it happened or none; if it was answered, all of it."""
        states = {self.file_state[n][0] for n in self._affected(target) if n in self.file_state}
        states |= {self.folder_state[f][0] for f in target.folders}
        if len(states) > 1:
            self.fail("half_state", f"bulk {kind} of {len(self._affected(target))} files left a mix of {states}")
        elif answered and states != {after}:
            self.fail("half_state", f"bulk {kind} was answered 200 but the files are {states} after the restart")
        elif states == {after}:
            self.counts[f"{kind}_applied"] += 1
        self.outcome(("applied" if states == {after} else "not applied") + (", answered 200" if answered else ""))

    # --- checks ---

    def _check_stopped_db(self) -> None:
        """On a copy of the database exactly as the crash left it (the library is down)."""
        scratch = self.work / "db-copy"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        for source in (self.lib.db_path, self.lib.wal_path):
            if source.exists():
                shutil.copyfile(source, scratch / source.name)
        conn = sqlite3.connect(scratch / self.lib.db_path.name, isolation_level=None)
        try:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            if result != ["ok"]:
                self.fail("integrity_failures", f"integrity_check after the crash: {result[:5]}")
            try:
                conn.execute("INSERT INTO files_text (files_text) VALUES ('integrity-check')")
            except sqlite3.DatabaseError as exc:
                self.fail("integrity_failures", f"the search index after the crash: {exc}")
            for what, sql in HALF_STATE_SQL.items():
                if count := conn.execute(sql).fetchone()[0]:
                    self.fail("half_state", f"after the crash, {count} x {what}")
        finally:
            conn.close()
            shutil.rmtree(scratch, ignore_errors=True)

    def _check_live_db(self) -> None:
        """After the restart, through a separate read-only connection, and the data directory beside it."""
        conn = sqlite3.connect(self.lib.db_path.as_uri() + "?mode=ro", uri=True, timeout=WAIT)
        try:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            rows = conn.execute("SELECT display_name, blob, size FROM files WHERE blob IS NOT NULL").fetchall()
            records = {row[0] for row in conn.execute("SELECT id FROM resumable")}
        finally:
            conn.close()
        if result != ["ok"]:
            self.fail("integrity_failures", f"integrity_check after the restart: {result[:5]}")
        owned = set()
        for name, key, size in rows:
            owned.add(key)
            path = self.lib.blobs / key[:2] / key
            if not path.is_file() or path.stat().st_size != size:
                category = "uploads_lost" if name in self.completed else "partial_visible"
                self.fail(category, f"{name}: its row has no blob of {size} bytes")
        on_disk = {p.name for p in self.lib.blobs.glob("*/*")}
        if stray := on_disk - owned:
            self.fail("leftovers", f"{len(stray)} blob(s) no row owns")
        if left := os.listdir(self.lib.incoming):
            self.fail("leftovers", f"incoming/ holds {left}")
        parts = {p.stem for p in self.lib.resumable.glob("*.part")}
        if parts - records:
            self.fail("leftovers", f"{len(parts - records)} .part file(s) without a transfer")
        if records - parts:
            self.fail("uploads_lost", f"{len(records - parts)} transfer(s) without their .part")

    def _audit(self) -> None:
        """Everything search lists is complete and intact; everything acknowledged is listed; no half state."""
        listed: dict[str, list[dict[str, Any]]] = {}
        for root in ("MEDIA_ROOT", "TRASH_ROOT"):
            for file in self.api.search_all(root):
                listed.setdefault(str(file.get("displayName")), []).append(file)
        self.verified = set()
        every = [str(file["id"]) for entries in listed.values() for file in entries]
        with ThreadPoolExecutor(DOWNLOADERS) as pool:
            digests = dict(zip(every, pool.map(self.api.download_sha256, every), strict=True))
        for name, entries in listed.items():
            if len(entries) > 1:
                self.fail("duplicates", f"{name} is listed {len(entries)} times")
            for file in entries:
                self._check_listed(name, file, digests[str(file["id"])])
        for name in self.completed:
            if name not in listed:
                self.fail("uploads_lost", f"{name} (acknowledged) is not listed")
        self.file_state = {
            n: (str(listed[n][0]["state"]), str(listed[n][0]["parentFolderId"])) for n in self.pool_home if n in listed
        }
        self.folder_state = {}
        for folder_id in self.folder_home:
            folder = self.api.folder(folder_id)
            self.folder_state[folder_id] = (str(folder["state"]), str(folder.get("parentFolderId")))
        self._check_tree()

    def _check_listed(self, name: str, file: dict[str, Any], downloaded_sha256: str) -> None:
        src = self.sources.get(name)
        if src is None:
            self.fail("partial_visible", f"a file nobody uploaded is listed: {name!r}")
            return
        if name in self.cut:
            self.fail("partial_visible", f"{name} is listed though its body was cut")
        complete = (
            file.get("operationStatus") == "READY"
            and int(file.get("sizeInBytes") or -1) == src.size
            and file.get("hash") == src.md5
            and downloaded_sha256 == src.sha256
        )
        if not complete:
            category = "uploads_lost" if name in self.completed else "partial_visible"
            self.fail(category, f"{name} is listed but not intact: {file.get('sizeInBytes')} bytes, {file}")
            return
        if name in self.uncertain:
            self.uncertain.discard(name)
            self.completed[name] = str(file["id"])
            self.counts["committed_unanswered"] += 1
        if self.completed.get(name) != file["id"]:
            self.fail("duplicates", f"{name} is listed as {file['id']}, acknowledged as {self.completed.get(name)}")
            return
        self.verified.add(name)

    def _check_tree(self) -> None:
        """Each pool file and folder is fully in its home or fully in the trash."""
        for name, home in self.pool_home.items():
            if name in self.file_state and not self._placed(self.file_state[name], home):
                self.fail("half_state", f"{name} is {self.file_state[name]} (home {home})")
        for folder_id, home in self.folder_home.items():
            if not self._placed(self.folder_state[folder_id], home):
                self.fail("half_state", f"folder {folder_id} is {self.folder_state[folder_id]} (home {home})")

    def _placed(self, state: tuple[str, str], home: str) -> bool:
        status, parent = state
        home_state = self.folder_state.get(home, ("OK", ""))[0]
        if status == "OK":
            return parent == home and home_state == "OK"
        return status == "DELETED" and (parent == TRASH_ROOT_ID or (parent == home and home_state == "DELETED"))

    # --- figures ---

    def figures(self, seconds: float) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "crashes": self.counts["crashes"],
            "recovered": self.counts["recovered"],
            "uploads_acked": self.counts["uploads_acked"],
            "uploads_intact": self.counts["uploads_intact"],
            "resumed_ok": self.counts["resumed_ok"],
            "tus_interrupted": self.counts["tus_interrupted"],
            "retried_ok": self.counts["retried_ok"],
            "committed_unanswered": self.counts["committed_unanswered"],
            "trash_applied": self.counts["trash_applied"],
            "restore_applied": self.counts["restore_applied"],
        }
        figures.update({category: self.failures[category] for category in FAILURES})
        figures["kill_points"] = dict(sorted(self.kill_points.items()))
        figures["landed"] = dict(sorted(self.landed.items()))
        figures["outcomes"] = dict(sorted(self.outcomes.items()))
        figures["problems"] = list(self.problems)
        figures["notes"] = list(self.notes)
        figures["seconds"] = round(seconds, 1)
        return figures


def make_plan(crashes: int, seed: int) -> list[tuple[str, str]]:
    """``crashes`` (kind, kill point) pairs: the four kinds in rounds, each round in a seeded order; each kind
    goes through all its kill points (in a seeded order) before repeating one."""
    rng = random.Random(f"plan-{seed}")
    decks: dict[str, list[str]] = {kind: [] for kind in KINDS}
    plan: list[tuple[str, str]] = []
    while len(plan) < crashes:
        for kind in rng.sample(KINDS, len(KINDS)):
            if not decks[kind]:
                decks[kind] = rng.sample(PHASES[kind], len(PHASES[kind]))
            plan.append((kind, decks[kind].pop()))
    return plan[:crashes]


def every_kill_point(seed: int) -> list[tuple[str, str]]:
    """Each (kind, kill point) once, in a seeded order."""
    points = [(kind, phase) for kind in KINDS for phase in PHASES[kind]]
    return random.Random(f"points-{seed}").sample(points, len(points))


def run(
    crashes: int,
    seed: int,
    *,
    plan: list[tuple[str, str]] | None = None,
    work_dir: Path | None = None,
    pool_size: int = 120,
) -> dict[str, Any]:
    """Crash the library ``crashes`` times, following ``plan`` (default: `make_plan`), seeded throughout.

    Returns the figures: crashes, recovered (no check failed after it), uploads_acked / uploads_intact (at the
    end, after a clean restart), resumed_ok, and the failure counts of `FAILURES`, which must all be zero;
    ``problems`` says what failed, ``kill_points``, ``landed`` and ``outcomes`` where the kills fell and how
    each ended for the client.
    """
    plan = make_plan(crashes, seed) if plan is None else plan
    if len(plan) != crashes:
        raise ValueError(f"the plan has {len(plan)} crashes, not {crashes}")
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rel-crash-")))
        crash_run = CrashRun(work_dir, seed, pool_size=pool_size)
        stack.callback(crash_run.close)
        crash_run.setup()
        for kind, phase in plan:
            crash_run.crash(kind, phase)
        crash_run.finish()
        return crash_run.figures(time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rel_crash", description=__doc__.split("\n\n")[0])
    parser.add_argument("--crashes", type=int, default=20, help="SIGKILLs (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="seed of every choice (default 1)")
    parser.add_argument("--pool", type=int, default=120, help="small files the bulk calls work on (default 120)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures = run(args.crashes, args.seed, pool_size=args.pool)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            if key in ("problems", "notes") and value:
                print(f"{key}:")
                for line in value:
                    print(f"  - {line}")
            elif key not in ("problems", "notes"):
                print(f"{key:22} {value}")
    return 0 if all(figures[c] == 0 for c in FAILURES) and figures["recovered"] == figures["crashes"] else 1


if __name__ == "__main__":
    sys.exit(main())
