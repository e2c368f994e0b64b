"""Errors the library answers, in Wix's body format (``details.applicationError`` / ``validationError``)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError as PydanticValidationError
from starlette.responses import JSONResponse

from media_mcp.wix.models import (
    ApplicationError,
    ErrorBody,
    ErrorDetails,
    FieldViolation,
    ValidationError,
)


class ApiError(Exception):
    """An error answered with a Wix-style body; raise it anywhere in a handler."""

    def __init__(
        self,
        status: int,
        code: str,
        description: str,
        *,
        data: dict[str, Any] | None = None,
        field: str | None = None,
        violated_rule: str = "OTHER",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description
        self.data = data or {}
        self.field = field
        self.violated_rule = violated_rule
        self.headers = headers

    def body(self) -> ErrorBody:
        if self.field is not None:
            violation = FieldViolation(
                field=self.field,
                description=self.description,
                violated_rule=self.violated_rule,
                rule_name=self.code,
                data=self.data,
            )
            details = ErrorDetails(validation_error=ValidationError(field_violations=[violation]))
        else:
            details = ErrorDetails(
                application_error=ApplicationError(code=self.code, description=self.description, data=self.data)
            )
        return ErrorBody(message=self.description, details=details)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body().to_wire(), status_code=self.status, headers=self.headers)


def not_found(kind: str, ident: str) -> ApiError:
    """An unknown file or folder: Wix answers 400 ``RESOURCE_NOT_FOUND``."""
    return ApiError(400, "RESOURCE_NOT_FOUND", f"{kind} not found: {ident!r}", data={"id": ident})


def invalid(field: str, description: str, *, rule: str = "OTHER", code: str | None = None) -> ApiError:
    """A field that breaks a rule (400 with a validation error)."""
    return ApiError(400, code or "INVALID_ARGUMENT", description, field=field, violated_rule=rule)


_RULES = {
    "missing": "REQUIRED_FIELD",
    "too_long": "MAX_SIZE",
    "too_short": "MIN_SIZE",
    "string_too_long": "MAX_LENGTH",
    "string_too_short": "MIN_LENGTH",
    "less_than_equal": "MAX",
    "greater_than_equal": "MIN",
    "enum": "FORMAT",
}


def from_pydantic(exc: PydanticValidationError) -> JSONResponse:
    """Turn a request-model validation failure into Wix's ``fieldViolations``."""
    violations = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in err["loc"]) or "body"
        violations.append(
            FieldViolation(
                field=field,
                description=err["msg"],
                violated_rule=_RULES.get(err["type"], "OTHER"),
                data={"type": err["type"]},
            )
        )
    body = ErrorBody(
        message="invalid request: " + "; ".join(f"{v.field}: {v.description}" for v in violations[:5]),
        details=ErrorDetails(validation_error=ValidationError(field_violations=violations)),
    )
    return JSONResponse(body.to_wire(), status_code=400)
