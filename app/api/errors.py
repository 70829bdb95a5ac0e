"""JSON errors: `{"error": {"code", "message", "field"?}}` with the right status, never a stack trace."""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from pydantic import BaseModel, ConfigDict, ValidationError
from werkzeug.exceptions import HTTPException

from app.storage.availability import FAIL_FAST_SECONDS, summary, unavailable_dependency

log = logging.getLogger(__name__)

# Codes of the errors Werkzeug raises (routing, body size), fixed here rather than derived from its wording.
HTTP_ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
                    415: "unsupported_media_type"}
# A dependency that does not answer (app/storage/availability.py) is a 503 the client may retry, never a 500.
UNAVAILABLE_ERRORS = {
    "milvus": ("store_unavailable", "the vector store (Milvus) is unavailable; retry later"),
    "database": ("database_unavailable", "the event database is unavailable; retry later"),
}
RETRY_AFTER_SECONDS = round(FAIL_FAST_SECONDS)


class ApiError(Exception):
    """An error the client should see, with a stable code."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


def error_response(status: int, code: str, message: str, field: str | None = None):
    detail = ErrorDetail(code=code, message=message, field=field or None)
    return jsonify(ErrorResponse(error=detail).model_dump(exclude_none=True)), status


def validation_error(exc: ValidationError) -> ApiError:
    """The first pydantic error as a 422 naming the offending field."""
    first = exc.errors(include_url=False, include_context=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    return ApiError(422, "invalid_" + ("field" if field else "body"), first["msg"], field)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.field)

    @app.errorhandler(ValidationError)
    def _validation_error(exc: ValidationError):
        api_error = validation_error(exc)
        return error_response(api_error.status, api_error.code, api_error.message, api_error.field)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = HTTP_ERROR_CODES.get(exc.code) or (exc.name or "error").lower().replace(" ", "_")
        response, status = error_response(exc.code or 500, code, exc.description or exc.name)
        for name, value in exc.get_headers():  # e.g. Allow on a 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        dependency = unavailable_dependency(exc)
        if dependency is None:
            log.exception("unhandled error")
            return error_response(500, "internal_error", "internal server error")
        log.warning("%s unavailable: %s", dependency, summary(exc))
        code, message = UNAVAILABLE_ERRORS[dependency]
        response, status = error_response(503, code, message)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response, status
