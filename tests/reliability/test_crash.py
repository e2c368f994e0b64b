"""Crashes: the library SIGKILLed mid-upload, mid-resumable-upload, mid-trash and mid-restore loses nothing.

The harness is `bench.rel_crash` (its longer runs are in the report command): a ``media-mcp library``
subprocess on a fresh data directory, killed at points chosen from each request's progress, restarted on the
same directory and checked after every kill.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bench import rel_crash

pytestmark = pytest.mark.slow  # each test runs and kills ``media-mcp library`` processes

SEED = 20250605


def _report(figures: dict[str, Any]) -> str:
    return "\n".join([*figures["problems"], f"outcomes: {figures['outcomes']}"])


def test_every_kill_point_recovers_with_nothing_lost_or_half_visible(tmp_path: Path) -> None:
    plan = rel_crash.every_kill_point(SEED)
    assert len(plan) == 18  # put 5, tus 5, trash 4, restore 4
    figures = rel_crash.run(len(plan), SEED, plan=plan, work_dir=tmp_path)
    report = _report(figures)

    assert figures["crashes"] == len(plan)
    assert figures["kill_points"] == {f"{kind}:{phase}": 1 for kind, phase in plan}
    assert figures["recovered"] == len(plan), report
    for failure in rel_crash.FAILURES:  # integrity, partial files visible, uploads lost, half states, ...
        assert figures[failure] == 0, f"{failure}:\n{report}"
    # every upload answered 200 (the pool, and the crashed ones that committed, were sent again or were resumed)
    # is listed once and downloads byte-identical after a last, clean restart
    assert figures["uploads_acked"] == 120 + 10
    assert figures["uploads_intact"] == figures["uploads_acked"], report
    # every interrupted resumable upload resumed (or was finished again) and is byte-identical
    assert figures["tus_interrupted"] == 5
    assert figures["resumed_ok"] == 5, report
    # a bulk call answered 200 before the kill had happened; one cut before its body was whole had not
    outcomes = figures["outcomes"]
    for kind in ("trash", "restore"):
        assert outcomes.get(f"{kind}:answered -> applied, answered 200") == 1, report
        assert outcomes.get(f"{kind}:body -> not applied") == 1, report
    assert outcomes.get("put:answered -> answered 200") == 1, report
    assert outcomes.get("put:body -> not committed, sent again") == 1, report


def test_the_checks_catch_a_half_trashed_file_a_short_blob_and_a_partial_row(tmp_path: Path) -> None:
    """The harness's checks have teeth: damage planted while the library is down is reported after a restart."""
    crash_run = rel_crash.CrashRun(tmp_path, SEED, pool_size=8)
    try:
        crash_run.setup()
        assert not crash_run.problems
        crash_run.stop()
        names = sorted(crash_run.pool_home)
        half, short = crash_run.completed[names[0]], crash_run.completed[names[1]]
        conn = sqlite3.connect(crash_run.lib.db_path, isolation_level=None)
        try:
            conn.execute("UPDATE files SET state = 'DELETED' WHERE id = ?", (half,))
            key = conn.execute("SELECT blob FROM files WHERE id = ?", (short,)).fetchone()[0]
            # a row for bytes that never arrived, as a commit before the body was whole would leave
            conn.execute(
                "INSERT INTO files (id, display_name, sort_name, parent_id, root, state, private, media_type,"
                " mime_type, size, hash, blob, status, created, updated)"
                " VALUES ('partial~1', 'crash-put-999.bin', 'crash-put-999.bin', 'media-root', 'media', 'OK', 0,"
                " 'OTHER', 'application/octet-stream', 5, 'x', ?, 'READY', 0, 0)",
                (key,),
            )
            conn.execute(
                "INSERT INTO files_text (rowid, body) SELECT seq, display_name FROM files WHERE id = 'partial~1'"
            )
        finally:
            conn.close()
        blob = crash_run.lib.blobs / key[:2] / key
        blob.write_bytes(blob.read_bytes()[:-1])

        crash_run.restart_and_check()
    finally:
        crash_run.close()
    report = "\n".join(crash_run.problems)
    assert crash_run.failures["half_state"] >= 2, report  # in the database and through the API
    assert crash_run.failures["uploads_lost"] >= 1, report  # the short blob: listed but not intact
    assert crash_run.failures["partial_visible"] >= 1, report  # a row nobody completed is listed
    assert crash_run.failures["integrity_failures"] == 0, report
