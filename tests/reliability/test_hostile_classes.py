"""The seven classes of named hostile input (issue 11) in the hostile part of ``python -m bench reliability``.

The part (``bench.rel_hostile.run``) tries each class with several members against a real library and servers (in
process, and ``media-mcp --transport http`` in child processes), and reports each in its figures and in its row of the
report: tried, rejected cleanly, accepted harmlessly, crashes, leaks. Here it runs at a small size (a few generated
examples per tool, 6 uploads per race, a search library of 300 files); no timing is asserted.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench import rel_hostile as rh
from bench.reliability import HOSTILE_CLASSES, hostile_row


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    return rh.run(5, 1, race_calls=6, catalog_files=300)


@pytest.mark.slow
def test_every_class_is_tried_with_several_members_and_holds(figures: dict[str, Any]) -> None:
    classes = figures["classes"]
    assert set(classes) == set(rh.CLASSES) == set(HOSTILE_CLASSES)
    problems = {key: c["failures"] for key, c in classes.items() if c["failures"]}
    for key, c in classes.items():
        assert c["tried"] > 0 and len(c["members"]) >= 2, (key, c["members"])
        assert c["tried"] == c["rejected_cleanly"] + c["defused"] + c["crashes"] + c["leaks"], key
        assert sum(c["members"].values()) == c["tried"], key
    assert all(c["crashes"] == c["leaks"] == c["stalls"] == c["broken"] == 0 for c in classes.values()), problems
    searched = classes["search_cost"]["figures"]
    assert searched["get_file_during_searches"]["n"] > 0 and searched["get_file_alone"]["n"] > 0
    assert classes["http_binds"]["members"]["non-default bind without the token"] == 2
    assert {"FIFO", "symlink swapped in while uploading", "FIFO swapped in while uploading"} <= set(
        classes["check_then_open"]["members"]
    )
    assert set(rh.HIDDEN_PIECES) <= set(classes["hidden_text"]["members"])


@pytest.mark.slow
def test_the_report_row_names_every_class_and_holds(figures: dict[str, Any]) -> None:
    row = hostile_row(figures)
    for label in HOSTILE_CLASSES.values():
        assert label in row.tried and label in row.result, label
    assert "get_file in another session during costly searches" in row.result
    assert row.held, row.failures


def _class(**counts: int) -> dict[str, Any]:
    tried = counts.get("tried", 4)
    base = {"tried": tried, "rejected_cleanly": tried - 1, "defused": 1, "crashes": 0, "leaks": 0, "stalls": 0,
            "broken": 0, "members": {"a": tried - 1, "b": 1}, "figures": {}, "failures": []}  # fmt: skip
    return {**base, **counts}


def _figures(classes: dict[str, Any]) -> dict[str, Any]:
    return {"tried": 10, "valid_tried": 5, "invalid_tried": 5, "rejected_cleanly": 8, "accepted_ok": 2, "failed": 0,
            "classes": classes}  # fmt: skip


def test_the_row_fails_on_a_class_that_is_missing_empty_leaking_or_crashing() -> None:
    every = {key: _class() for key in HOSTILE_CLASSES}
    assert hostile_row(_figures(every)).held
    assert "7 classes of named hostile input: 28 cases" in hostile_row(_figures(every)).tried
    missing = {k: v for k, v in every.items() if k != "size_cap"}
    assert not hostile_row(_figures(missing)).held
    assert "1 classes missing or empty" in hostile_row(_figures(missing)).failures
    assert not hostile_row(_figures({**every, "search_cost": _class(tried=0)})).held
    assert not hostile_row(_figures({}).copy()).held
    for kind in ("crashes", "leaks", "stalls", "broken"):
        row = hostile_row(_figures({**every, "small_leaks": _class(**{kind: 1})}))
        assert not row.held and f"1 class {kind}" in row.failures, (kind, row.failures)
        assert f"(1 {kind})" in row.result
