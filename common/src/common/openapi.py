"""The OpenAPI document a service serves, true to its errors: every 4xx and 5xx answer is the
common format {"errors": [{"message", "field"?}]} (common.errors), and request validation
fails with 400, not FastAPI's default 422."""

from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA = "ErrorResponse"

_ERROR_RESPONSE: dict[str, Any] = {
    "title": ERROR_SCHEMA,
    "description": "Every error answer: one or more messages, each naming its field if it has one.",
    "type": "object",
    "additionalProperties": False,
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["message"],
                "properties": {
                    "message": {"type": "string"},
                    "field": {
                        "type": "string",
                        "description": "the body or query field at fault, dotted for nested ones",
                    },
                },
            },
        }
    },
}

_ERROR_CONTENT = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}


def document_errors(app: FastAPI) -> None:
    """Make `app.openapi()` describe the error answers as the error handlers send them."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        # FastAPI's own validation-error models describe a body these apps never send.
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas[ERROR_SCHEMA] = _ERROR_RESPONSE
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                responses["4XX"] = {"description": "Client error", "content": _ERROR_CONTENT}
                responses["5XX"] = {"description": "Server error", "content": _ERROR_CONTENT}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
