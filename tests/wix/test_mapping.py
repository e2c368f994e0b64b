"""The mapping from Wix answers to the MediaError tree is total: every status lands on exactly one class."""

from __future__ import annotations

import httpx
import pytest

from media_mcp import errors
from media_mcp.wix.mapping import from_response, from_transport, retry_after

LEAVES = (
    errors.NotFound,
    errors.InvalidRequest,
    errors.PermissionDenied,
    errors.Conflict,
    errors.QuotaExceeded,
    errors.RateLimited,
    errors.Unavailable,
)


def _body(code: str) -> dict[str, object]:
    return {"message": "m", "details": {"applicationError": {"code": code, "description": "d"}}}


@pytest.mark.parametrize("status", range(300, 600))
@pytest.mark.parametrize("body", [None, "html", "wix"])
def test_every_status_maps_to_exactly_one_class(status: int, body: str | None) -> None:
    if body == "wix":
        response = httpx.Response(status, json=_body("SOMETHING"))
    elif body == "html":
        response = httpx.Response(status, text="<html>oops</html>")
    else:
        response = httpx.Response(status)
    error = from_response(response)
    assert sum(isinstance(error, leaf) for leaf in LEAVES) == 1
    assert error.status == status
    assert error.code


def test_every_class_is_reachable_and_keeps_the_wix_code() -> None:
    cases = {
        errors.NotFound: httpx.Response(400, json=_body("RESOURCE_NOT_FOUND")),
        errors.InvalidRequest: httpx.Response(400, json=_body("UNSUPPORTED_MEDIA_TYPE")),
        errors.PermissionDenied: httpx.Response(403, json=_body("PERMISSION_DENIED")),
        errors.Conflict: httpx.Response(429, json=_body("UPLOAD_TOKEN_ALREADY_USED")),
        errors.QuotaExceeded: httpx.Response(400, json=_body("SITE_QUOTA_EXCEEDED")),
        errors.RateLimited: httpx.Response(429, json=_body("TOO_MANY_REQUESTS"), headers={"Retry-After": "3"}),
        errors.Unavailable: httpx.Response(503, json=_body("UNAVAILABLE")),
    }
    for kind, response in cases.items():
        error = from_response(response)
        assert type(error) is kind
        assert error.code == response.json()["details"]["applicationError"]["code"]
        assert error.description == "d"
        assert error.retryable == (kind in (errors.RateLimited, errors.Unavailable))
    assert set(cases) == set(LEAVES)


def test_validation_violation_gives_code_and_field() -> None:
    violation = {"field": "fileId", "description": "no such file", "ruleName": "RESOURCE_NOT_FOUND"}
    error = from_response(
        httpx.Response(400, json={"message": "x", "details": {"validationError": {"fieldViolations": [violation]}}})
    )
    assert isinstance(error, errors.NotFound)
    assert (error.code, error.field, error.description) == ("RESOURCE_NOT_FOUND", "fileId", "no such file")


def test_retry_after_forms() -> None:
    assert retry_after(httpx.Response(429, headers={"Retry-After": "12"})) == 12.0
    dated = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"})
    assert retry_after(dated, now=1445412500.0) == 10.0
    assert retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    assert retry_after(httpx.Response(429)) is None


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError("x"), httpx.ConnectTimeout("x"), httpx.ReadTimeout("x"), httpx.WriteError("x"),
     httpx.RemoteProtocolError("x"), httpx.PoolTimeout("x"), httpx.ProxyError("x"), httpx.UnsupportedProtocol("x")],
)  # fmt: skip
def test_every_transport_failure_is_unavailable(exc: httpx.HTTPError) -> None:
    error = from_transport(exc, "get_file")
    assert isinstance(error, errors.Unavailable)
    assert error.retryable
    assert "get_file" in str(error)
