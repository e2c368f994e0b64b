"""Authentication, the two path prefixes, and malformed or oversized requests."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from pydantic import SecretStr
from starlette.routing import Router

from media_mcp.library.app import RequireApiKey
from media_mcp.library.service import Library
from media_mcp.library.tokens import Signer
from media_mcp.settings import LibrarySettings
from tests.conftest import Api, FakeClock

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("prefix", ["/site-media/v1", "/wix-privatemedia-proxy-server/v1"])
async def test_both_prefixes_need_the_key(api: Api, prefix: str) -> None:
    missing = await api.http.post(f"{prefix}/files/search", json={})
    assert missing.status_code == 401
    assert missing.json()["details"]["applicationError"]["code"] == "UNAUTHENTICATED"
    wrong = await api.http.post(f"{prefix}/files/search", json={}, headers={"Authorization": "mml_wrong"})
    assert wrong.status_code == 401
    assert api.library.api_key not in wrong.text
    right = await api.http.post(f"{prefix}/files/search", json={}, headers=api.auth)
    assert right.status_code == 200
    bearer = await api.http.post(
        f"{prefix}/folders", json={"displayName": "x"}, headers={"Authorization": f"Bearer {api.library.api_key}"}
    )
    assert bearer.status_code == 200
    folder_id = bearer.json()["folder"]["id"]
    other = "/wix-privatemedia-proxy-server/v1" if prefix == "/site-media/v1" else "/site-media/v1"
    same = await api.http.get(f"{other}/folders/{folder_id}", headers=api.auth)
    assert same.json()["folder"]["displayName"] == "x"


def test_an_empty_key_is_refused_outright(tmp_path: Path, clock: FakeClock) -> None:
    for key in ("", "   "):
        with pytest.raises(ValueError, match="empty"):
            RequireApiKey(Router(), key)
    with pytest.raises(ValueError, match="empty"):
        Signer(b"", clock)
    settings = LibrarySettings(data_dir=tmp_path / "d", library_api_key=SecretStr("  "))
    with Library.open(settings, clock=clock) as lib:
        assert lib.api_key.startswith("mml_")


async def test_unknown_routes_and_methods_answer_wix_bodies(api: Api) -> None:
    unknown = await api.call("GET", "/nothing-here")
    assert unknown.status_code == 404
    assert unknown.json()["details"]["applicationError"]["code"] == "NOT_FOUND"
    wrong_method = await api.call("DELETE", "/files/search")
    assert wrong_method.status_code == 405
    assert "applicationError" in wrong_method.json()["details"]
    outside = await api.http.get("/etc/passwd")
    assert outside.status_code == 404


async def test_malformed_bodies_answer_400(api: Api) -> None:
    not_json = await api.call(
        "POST", "/files/search", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["details"]["applicationError"]["code"] == "INVALID_JSON"
    array = await api.call("POST", "/files/search", json=[1, 2])
    assert array.status_code == 400
    wrong_type = await api.call("POST", "/files/search", json={"paging": {"limit": "many"}})
    assert wrong_type.status_code == 400
    assert wrong_type.json()["details"]["validationError"]["fieldViolations"][0]["field"] == "paging.limit"
    binary = await api.call("POST", "/folders", content=b"\xff\xfe\x00", headers={"Content-Type": "application/json"})
    assert binary.status_code == 400


async def test_deeply_nested_json_is_a_400(asgi_api: Api) -> None:
    body = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await asgi_api.call("POST", "/files/search", content=body)
    assert response.status_code == 400
    assert response.json()["details"]["applicationError"]["code"] == "INVALID_JSON"
    cursor = base64.urlsafe_b64encode(b"[" * 11_000).decode()
    deep = await asgi_api.call("GET", "/files", params={"paging.cursor": cursor})
    assert deep.status_code == 400


async def test_oversized_body_is_refused_without_reading_it_all(api: Api) -> None:
    big = b'{"search": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    response = await api.call("POST", "/files/search", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["details"]["applicationError"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_healthz_answers_ok_without_the_key(api: Api) -> None:
    response = await api.http.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
