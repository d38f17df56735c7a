"""The error types every service raises and the handlers that render them as {"errors": [...]}."""

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.openapi import document_errors

log = logging.getLogger("common.errors")


class AppError(Exception):
    """An error a client should see, with its HTTP status."""

    status_code = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def errors(self) -> list[dict[str, Any]]:
        error: dict[str, Any] = {"message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return [error]


class BadRequestError(AppError):
    status_code = 400


class NotAuthorizedError(AppError):
    """Not signed in (401)."""

    status_code = 401

    def __init__(self, message: str = "Not authorized") -> None:
        super().__init__(message)


class ForbiddenError(AppError):
    """Signed in but not allowed (403)."""

    status_code = 403

    def __init__(self, message: str = "Forbidden") -> None:
        super().__init__(message)


class NotFoundError(AppError):
    status_code = 404

    def __init__(self, message: str = "Not found") -> None:
        super().__init__(message)


class PaymentRequiredError(AppError):
    """The card was declined (402)."""

    status_code = 402


class TooManyRequestsError(AppError):
    """Slow down (429); `retry_after_seconds` goes out as the Retry-After header."""

    status_code = 429

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ServiceUnavailableError(AppError):
    """A dependency (Stripe, the database, the bus) cannot be reached right now (503)."""

    status_code = 503


class RequestValidationFailed(AppError):
    """Several field errors at once, from request validation."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"] if errors else "Invalid request")
        self._errors = errors

    def errors(self) -> list[dict[str, Any]]:
        return self._errors


def error_response(status_code: int, errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"errors": errors})


def _describe(error: dict[str, Any]) -> dict[str, Any]:
    location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
    kind = error.get("type", "")
    if kind == "json_invalid":
        return {"message": "Request body is not valid JSON"}
    if kind == "missing" and not location:
        return {"message": "Request body is required"}
    message = str(error.get("msg", "Invalid value"))
    message = message.removeprefix("Value error, ")
    field = ".".join(location) if location else None
    if field and kind == "missing":
        message = f"{field} is required"
    elif field and kind != "value_error":
        # A model-level message ("Input should be a valid string") needs the field to make sense;
        # our own validators already word the message for a person.
        message = f"{field}: {message}"
    result: dict[str, Any] = {"message": message}
    if field:
        result["field"] = field
    return result


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    response = error_response(exc.status_code, exc.errors())
    if isinstance(exc, TooManyRequestsError):
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
    return response


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, [_describe(error) for error in exc.errors()])


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    messages = {404: "Not found", 405: "Method not allowed"}
    message = messages.get(exc.status_code) or str(exc.detail)
    return JSONResponse(
        status_code=exc.status_code,
        content={"errors": [{"message": message}]},
        headers=getattr(exc, "headers", None),
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, [{"message": "Something went wrong"}])


def install_error_handlers(app: FastAPI) -> None:
    """Render every error (ours, validation, bad JSON, unknown routes) in the common format, and
    say so in the app's OpenAPI document."""
    document_errors(app)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(json.JSONDecodeError, _validation_error_from_json)
    app.add_exception_handler(Exception, _unexpected_error)


async def _validation_error_from_json(_: Request, exc: Exception) -> JSONResponse:
    return error_response(400, [{"message": "Request body is not valid JSON"}])
