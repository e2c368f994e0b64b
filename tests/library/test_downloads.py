"""Download links: signed and expiring, Content-Disposition, Range, static URLs, zips, private files."""

from __future__ import annotations

import io
import zipfile
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import Api, FakeClock, PNG_16x8

pytestmark = pytest.mark.anyio


async def _link(api: Api, file_id: str, **fields: Any) -> str:
    minted = await api.ok("POST", "/files/generate-file-download-url", json={"fileId": file_id, **fields})
    assert [u["assetKey"] for u in minted["downloadUrls"]] == fields.get("assetKeys", ["src"])
    url: str = minted["downloadUrls"][0]["url"]
    return url


async def test_download_link_serves_bytes_with_disposition(api: Api) -> None:
    file = await api.upload("report final.txt", b"0123456789", "text/plain")
    response = await api.http.get(await _link(api, file["id"]))
    assert response.status_code == 200
    assert response.content == b"0123456789"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert "report%20final.txt" in response.headers["content-disposition"]
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["x-content-type-options"] == "nosniff"

    inline = await api.http.get(
        await _link(api, file["id"], contentDisposition="INLINE", downloadFileName="Ünïcode name.txt")
    )
    assert inline.headers["content-disposition"].startswith("inline;")
    assert "filename*=utf-8''%C3%9Cn%C3%AFcode%20name.txt" in inline.headers["content-disposition"]


async def test_download_name_cannot_inject_headers_or_paths(api: Api) -> None:
    file = await api.upload("a.txt", b"abc", "text/plain")
    url = await _link(api, file["id"], downloadFileName='../../x"\r\nSet-Cookie: a=b\u202e.txt')
    response = await api.http.get(url)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    disposition = response.headers["content-disposition"]
    assert "/" not in disposition.split("filename", 1)[1]
    assert "\u202e" not in disposition


async def test_range_requests(api: Api) -> None:
    file = await api.upload("digits.txt", b"0123456789", "text/plain")
    url = await _link(api, file["id"])
    part = await api.http.get(url, headers={"Range": "bytes=2-5"})
    assert part.status_code == 206
    assert part.content == b"2345"
    assert part.headers["content-range"] == "bytes 2-5/10"
    tail = await api.http.get(url, headers={"Range": "bytes=-3"})
    assert tail.content == b"789"
    unsatisfiable = await api.http.get(url, headers={"Range": "bytes=50-60"})
    assert unsatisfiable.status_code == 416
    head = await api.http.head(url)
    assert head.status_code == 200
    assert head.headers["content-length"] == "10"


async def test_link_expires_on_the_injected_clock(api: Api, clock: FakeClock) -> None:
    file = await api.upload("a.txt", b"abc", "text/plain", private=True)
    url = await _link(api, file["id"], expirationInMinutes=5)
    assert (await api.http.get(url)).status_code == 200
    clock.advance(5 * 60 - 1)
    assert (await api.http.get(url)).status_code == 200
    clock.advance(1)
    expired = await api.http.get(url)
    assert expired.status_code == 403
    assert expired.json()["details"]["applicationError"]["code"] == "FORBIDDEN"


async def test_expired_link_redirects_when_asked(api: Api, clock: FakeClock) -> None:
    file = await api.upload("a.txt", b"abc", "text/plain")
    url = await _link(api, file["id"], expirationInMinutes=1, expirationRedirectUrl="https://example.com/expired")
    clock.advance(61)
    response = await api.http.get(url)
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/expired"


async def test_default_expiry_is_wix_default_600_minutes(api: Api, clock: FakeClock) -> None:
    file = await api.upload("a.txt", b"abc", "text/plain")
    url = await _link(api, file["id"])
    clock.advance(600 * 60 - 1)
    assert (await api.http.get(url)).status_code == 200
    clock.advance(1)
    assert (await api.http.get(url)).status_code == 403


async def test_tampered_and_misused_tokens_are_refused(api: Api) -> None:
    secret = await api.upload("secret.txt", b"secret", "text/plain", private=True)
    other = await api.upload("other.txt", b"other", "text/plain")
    url = await _link(api, secret["id"])
    token = parse_qs(urlsplit(url).query)["token"][0]
    header, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    cases = [
        url.replace(token, f"{header}.{payload}.{flipped}"),
        url.replace(token, f"{header}.{payload}."),
        url.replace(token, "eyJhbGciOiJub25lIn0." + payload + "."),  # alg=none
        url.split("?")[0],  # no token at all
        url.replace(secret["id"], other["id"]),  # a token for one file used on another
        url + "x" * 9000,
    ]
    for bad in cases:
        response = await api.http.get(bad)
        assert response.status_code == 403, bad
        assert b"secret" not in response.content
    upload = await api.ok("POST", "/files/generate-upload-url", json={"mimeType": "text/plain"})
    upload_token = upload["uploadUrl"].rsplit("/", 1)[1]
    wrong_audience = await api.http.get(url.replace(token, upload_token))
    assert wrong_audience.status_code == 403


async def test_private_files_are_never_served_without_a_token(api: Api) -> None:
    secret = await api.upload("secret.png", PNG_16x8, "image/png", private=True)
    public = await api.upload("open.png", PNG_16x8, "image/png")
    static_private = await api.http.get(secret["url"])
    assert static_private.status_code == 403
    assert PNG_16x8 not in static_private.content
    static_public = await api.http.get(public["url"])
    assert static_public.status_code == 200
    assert static_public.content == PNG_16x8
    assert static_public.headers["content-security-policy"] == "sandbox"
    icon = await api.http.get(secret["thumbnailUrl"])
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")


async def test_asset_keys(api: Api) -> None:
    file = await api.upload("a.txt", b"abc", "text/plain")
    bad = await api.call(
        "POST", "/files/generate-file-download-url", json={"fileId": file["id"], "assetKeys": ["720p"]}
    )
    assert bad.json()["details"]["applicationError"]["code"] == "INVALID_ASSET_KEY"
    bad_bodies: list[dict[str, Any]] = [
        {"fileId": file["id"], "expirationInMinutes": 0},
        {"fileId": file["id"], "downloadFileName": "n" * 101},
        {"fileId": file["id"], "expirationInMinutes": 525601},
        {"fileId": "missing"},
    ]
    for body in bad_bodies:
        assert (await api.call("POST", "/files/generate-file-download-url", json=body)).status_code == 400


async def test_files_zip(api: Api) -> None:
    a = await api.upload("a.txt", b"aaa", "text/plain")
    b = await api.upload("a.txt", b"bbb", "text/plain")
    minted = await api.ok("POST", "/files/generate-download-url", json={"fileIds": [a["id"], b["id"]]})
    response = await api.http.get(minted["downloadUrl"])
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert sorted(archive.namelist()) == ["a (1).txt", "a.txt"]
        assert {archive.read(n) for n in archive.namelist()} == {b"aaa", b"bbb"}
    forged = minted["downloadUrl"].rsplit("=", 1)[0] + "=forged"
    assert (await api.http.get(forged)).status_code == 403
    missing = await api.call("POST", "/files/generate-download-url", json={"fileIds": ["missing"]})
    assert missing.status_code == 400
    assert (await api.call("POST", "/files/generate-download-url", json={"fileIds": []})).status_code == 400
    # incoming/ holds no leftover zip once the download is done
    assert [p.name for p in api.library.data.incoming.iterdir()] == []
