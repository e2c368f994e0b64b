"""A data directory the command cannot use: one line on stderr saying which and why, exit status 2, no traceback.

Run as a person or an assistant's host runs it: the command as a subprocess, over stdio (or HTTP, or the library
on its own), before any protocol message.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import cli_environment

RUN_TIMEOUT = 60.0
"""Bound on one run of the command: it must give up long before, before reading any protocol message."""


READ_ONLY_MOUNT = [
    "unshare", "-m", "sh", "-c", 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
]  # fmt: skip
"""Runs a command in a mount namespace of its own where the directory given first is read-only: how a directory is
made unwritable for root, whom file modes do not stop."""


def run(tmp_path: Path, data_dir: Path, *args: str, read_only: bool = False) -> subprocess.CompletedProcess[str]:
    env = cli_environment(tmp_path, data_dir)
    command = [sys.executable, "-m", "media_mcp", *args]
    if read_only:
        command = [*READ_ONLY_MOUNT, str(data_dir), *command]
    return subprocess.run(
        command,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def a_file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "data"
    path.write_text("not a directory")
    return path, f"{path} is a file, not a directory"


def under_a_file(tmp_path: Path) -> tuple[Path, str]:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    return blocker / "media", f"{blocker} is a file, not a directory"


def damaged_guard_database(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    (path / "guard.sqlite3").write_bytes(b"\x8f this is no SQLite file " * 200)
    return path, "guard.sqlite3): file is not a database"


def not_writable(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "data"
    if os.geteuid() == 0:  # modes do not stop root: the directory is mounted read-only for the run (see `run`)
        path.mkdir(mode=0o700)
        if subprocess.run([*READ_ONLY_MOUNT, str(path), "true"], capture_output=True, check=False).returncode != 0:
            if os.environ.get("CI") == "true":
                pytest.fail("CI runs as root and must be able to mount a directory read-only (unshare -m)")
            pytest.skip("running as root without the right to make a mount namespace (unshare -m)")
        return path, "read-only file system"
    path.mkdir(mode=0o500)
    return path, "permission denied"


CASES: dict[str, Callable[[Path], tuple[Path, str]]] = {
    "a file": a_file,
    "under a file": under_a_file,
    "damaged guard database": damaged_guard_database,
    "not writable": not_writable,
}


def said_one_line(done: subprocess.CompletedProcess[str], prefix: str, path: Path, why: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and why in lines[0], done.stderr
    assert lines[0].startswith(f"{prefix}: cannot use data directory {path}: "), done.stderr


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("transport", [[], ["--transport", "http", "--port", "0"]], ids=["stdio", "http"])
def test_serve_refuses_an_unusable_data_directory(tmp_path: Path, case: str, transport: list[str]) -> None:
    path, why = CASES[case](tmp_path)
    done = run(tmp_path, path, *transport, read_only=case == "not writable" and os.geteuid() == 0)
    said_one_line(done, "media-mcp", path, why)


@pytest.mark.parametrize("case", ["a file", "under a file", "not writable"])
def test_the_library_command_refuses_an_unusable_data_directory(tmp_path: Path, case: str) -> None:
    path, why = CASES[case](tmp_path)
    done = run(tmp_path, path, "library", "--data-dir", str(path), "--port", "0",
               read_only=case == "not writable" and os.geteuid() == 0)  # fmt: skip
    said_one_line(done, "media-mcp library", path, why)


def test_the_library_command_refuses_a_damaged_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    (path / "library.sqlite3").write_bytes(b"\x8f this is no SQLite file " * 200)
    done = run(tmp_path, path, "library", "--data-dir", str(path), "--port", "0")
    said_one_line(done, "media-mcp library", path, "file is not a database")
