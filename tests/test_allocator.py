"""The glibc mmap threshold is pinned at start-up, unless the environment already sets it."""

from __future__ import annotations

import platform
import sys

import pytest

from media_mcp.allocator import pin_mmap_threshold

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_pinned_on_glibc() -> None:
    assert pin_mmap_threshold() is True


def test_an_operator_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "262144")
    assert pin_mmap_threshold() is False


def test_nothing_to_do_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert pin_mmap_threshold() is False
