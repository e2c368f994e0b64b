"""Settings from the environment: which variables count, what wins, and what an invalid one says.

In process for the classes (with ``monkeypatch`` on the environment), and through the command for what a person sees
when a variable is wrong.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from media_mcp.settings import LibrarySettings, ServerSettings, WixSettings

RUN_TIMEOUT = 60.0
"""Bound on one run of the command (the SDK import takes ~0.6 s on a quiet machine, much more on a busy one)."""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting of the developer's own shell leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith(("MEDIA_MCP_", "WIX_")):
            monkeypatch.delenv(name)


def test_a_field_comes_from_its_prefixed_variable_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIA_MCP_READ_ONLY", "true")
    monkeypatch.setenv("media_mcp_max_trash_items", "7")
    monkeypatch.setenv("MEDIA_MCP_LIBRARY_PORT", "9001")
    settings = ServerSettings()
    assert settings.read_only is True and settings.max_trash_items == 7
    assert LibrarySettings().library_port == 9001
    assert ServerSettings.model_fields["confirm"].default == settings.confirm == "auto"  # unset: the default


def test_an_argument_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIA_MCP_CONFIRM", "allow")
    monkeypatch.setenv("MEDIA_MCP_MAX_TRASH_ITEMS", "7")
    settings = ServerSettings(confirm="token")
    assert settings.confirm == "token" and settings.max_trash_items == 7


def test_variables_without_the_prefix_or_unknown_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READ_ONLY", "true")
    monkeypatch.setenv("MEDIA_MCP_NO_SUCH_SETTING", "1")
    monkeypatch.setenv("MEDIA_MCP_WIX_API_URL", "https://wix.example")  # a Wix setting, not the server's
    settings = ServerSettings()
    assert settings.read_only is False
    assert "no_such_setting" not in settings.model_dump() and "wix_api_url" not in settings.model_dump()


def test_wix_settings_come_from_their_own_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIX_API_KEY", "key-from-env")
    monkeypatch.setenv("WIX_SITE_ID", "site-1")
    monkeypatch.setenv("MEDIA_MCP_WIX_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("MEDIA_MCP_API_KEY", "not-this-one")
    wix = WixSettings()
    assert isinstance(wix.api_key, SecretStr) and wix.api_key.get_secret_value() == "key-from-env"
    assert "key-from-env" not in repr(wix)
    assert wix.site_id == "site-1" and wix.timeout_seconds == 2.5 and wix.configured
    assert WixSettings(site_id="site-2").site_id == "site-2"  # by field name, over the variable


def test_an_invalid_variable_is_refused_by_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIA_MCP_LIBRARY_PORT", "70000")
    with pytest.raises(ValidationError) as raised:
        LibrarySettings()
    assert [error["loc"] for error in raised.value.errors()] == [("library_port",)]
    monkeypatch.setenv("MEDIA_MCP_REDIS_URL", "http://cache:6379")
    with pytest.raises(ValidationError, match="redis://"):
        ServerSettings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MEDIA_MCP_HTTP_MAX_SESSIONS", "0"),
        ("MEDIA_MCP_HTTP_MAX_SESSIONS", "many"),
        ("MEDIA_MCP_HTTP_SESSION_IDLE_SECONDS", "1"),
        ("MEDIA_MCP_HTTP_SESSION_IDLE_SECONDS", "nan"),
        ("MEDIA_MCP_HTTP_SESSION_IDLE_SECONDS", "inf"),
    ],
)
def test_http_session_limits_out_of_bounds_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as raised:
        ServerSettings()
    assert [error["loc"] for error in raised.value.errors()] == [(variable.removeprefix("MEDIA_MCP_").lower(),)]


def test_the_command_names_an_invalid_setting_but_never_its_value(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(tmp_path),
        "MEDIA_MCP_DATA_DIR": str(tmp_path / "data"),
        "MEDIA_MCP_REDIS_URL": "http://user:hunter2-secret@cache:6379",
    }
    done = subprocess.run(
        [sys.executable, "-m", "media_mcp"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "invalid setting: redis_url" in done.stderr
    assert "hunter2" not in done.stderr
    assert not (tmp_path / "data").exists()


def test_the_readme_settings_table_names_every_setting() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    first_cells = [line.split("|")[1] for line in readme.splitlines() if line.startswith("| `")]
    table = {name.strip().strip("`") for cell in first_cells for name in cell.split(",")}
    variables = {
        (field.validation_alias if isinstance(field.validation_alias, str) else cls.env_prefix + name).upper()
        for cls in (ServerSettings, LibrarySettings, WixSettings)
        for name, field in cls.model_fields.items()
    }
    assert variables - table == set()
