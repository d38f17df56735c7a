"""The edge: each domain error's HTTP status (one table), and one JSON format for every error.

Ours, validation, bad JSON, unknown routes and crashes are all rendered as
{"errors": [{"message", "field"?}]}.
"""

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from common.domain_errors import (
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    PaymentDeclined,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from common.openapi import document_errors

log = logging.getLogger("common.errors")


# The one place a domain error becomes an HTTP status. The most specific class listed wins, so
# Conflict and InvalidState answer 400 through Invalid until they are given their own line.
HTTP_STATUS: dict[type[DomainError], int] = {
    DomainError: 400,
    Invalid: 400,
    Unauthenticated: 401,
    PaymentDeclined: 402,
    Forbidden: 403,
    NotFound: 404,
    RateLimited: 429,
    Unavailable: 503,
}


def http_status(error: DomainError) -> int:
    return next(HTTP_STATUS[cls] for cls in type(error).__mro__ if cls in HTTP_STATUS)


def _error_entry(error: DomainError) -> dict[str, Any]:
    entry: dict[str, Any] = {"message": error.message}
    if error.field is not None:
        entry["field"] = error.field
    return entry


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


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    response = error_response(http_status(exc), [_error_entry(exc)])
    if isinstance(exc, RateLimited | Unavailable) and exc.retry_after_seconds is not None:
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
    return response


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, [_describe(error) for error in exc.errors()])


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    messages = {404: "Not found", 405: "Method not allowed"}
    message = messages.get(exc.status_code) or str(exc.detail)
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return JSONResponse(
        status_code=exc.status_code,
        content={"errors": [{"message": message}]},
        headers=headers or None,
    )


def _allowed_methods(request: Request) -> str:
    """Every method the path answers to. Starlette's own Allow names only the first route
    matching the path, and FastAPI makes one route per method (GET /api/tickets and POST
    /api/tickets), so a 405 would list one of them (found by fuzzing the OpenAPI)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match != Match.NONE:
                methods |= route.methods
    return ", ".join(sorted(methods))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, [{"message": "Something went wrong"}])


def install_error_handlers(app: FastAPI) -> None:
    """Render every error (ours, validation, bad JSON, unknown routes) in the common format, and
    say so in the app's OpenAPI document."""
    document_errors(app)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(json.JSONDecodeError, _validation_error_from_json)
    app.add_exception_handler(Exception, _unexpected_error)


async def _validation_error_from_json(_: Request, exc: Exception) -> JSONResponse:
    return error_response(400, [{"message": "Request body is not valid JSON"}])
