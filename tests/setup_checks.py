"""Tools some tests need from outside Python (Node and the pinned npm packages, Chromium, redis-server): each test
skips, naming the setup, on a developer's machine without them, and fails when ``CI=true`` (as CI services set it),
where ``.ci/run`` installs them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

JS_DIR = Path(__file__).resolve().parent / "js"
NPM_SETUP = "run `npm ci --prefix tests/js` (needs Node 20+ and npm) before the tests"


def setup_missing(reason: str) -> NoReturn:
    """Skip on a developer's machine; fail under CI (``CI=true``), where the check is required."""
    import pytest

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required because CI=true)")
    pytest.skip(reason)


def node_or_skip(packages: Iterable[str], *, needs: str, major: int = 20) -> str:
    """The node binary, after checking it is ``major``+ and the npm ``packages`` are installed under tests/js
    (``needs`` says what needs them, for the message); skips (fails under CI) when not."""
    node = shutil.which("node")
    if node is None:
        setup_missing(f"node is not on PATH: install Node {major}+ and {NPM_SETUP}")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    match = re.match(r"v(\d+)\.", version.strip())
    if match is None or int(match.group(1)) < major:
        setup_missing(f"node {version.strip()!r} is too old: {needs} need Node {major}+; then {NPM_SETUP}")
    for package in packages:
        if not (JS_DIR / "node_modules" / package / "package.json").is_file():
            setup_missing(f"{package} is not installed under tests/js/node_modules: {NPM_SETUP}")
    return node
