"""The OpenAPI document a service serves describes the error answers it really sends."""

from typing import Any

import httpx
from common.domain_errors import NotFound
from common.errors import install_error_handlers
from fastapi import FastAPI
from pydantic import BaseModel


class Body(BaseModel):
    name: str


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/api/things/{thing_id}")
    async def update_thing(thing_id: str, body: Body) -> Body:
        if thing_id == "missing":
            raise NotFound("Thing not found")
        return body

    return app


def fits(value: Any, schema: dict[str, Any]) -> bool:
    """Whether `value` has the shape the (object/array/string) schema describes."""
    kind = schema.get("type")
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return (
            isinstance(value, list)
            and len(value) >= schema.get("minItems", 0)
            and all(fits(item, schema["items"]) for item in value)
        )
    if kind == "object":
        properties = schema.get("properties", {})
        return (
            isinstance(value, dict)
            and set(schema.get("required", [])) <= set(value)
            and set(value) <= set(properties)
            and all(fits(item, properties[key]) for key, item in value.items())
        )
    raise AssertionError(f"no check for {schema}")


async def test_error_answers_have_the_documented_shape() -> None:
    app = make_app()
    document = app.openapi()
    responses = document["paths"]["/api/things/{thing_id}"]["post"]["responses"]
    assert set(responses) == {"200", "4XX", "5XX"}  # no 422: validation fails with 400
    assert "HTTPValidationError" not in document["components"]["schemas"]
    reference = responses["4XX"]["content"]["application/json"]["schema"]["$ref"]
    error_schema = document["components"]["schemas"][reference.rsplit("/", 1)[-1]]

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        invalid = await client.post("/api/things/1", json={"name": 5})
        missing = await client.post("/api/things/missing", json={"name": "x"})
        served = (await client.get("/openapi.json")).json()

    assert (invalid.status_code, missing.status_code) == (400, 404)
    assert invalid.json()["errors"][0]["field"] == "name"
    for answer in (invalid, missing):
        assert fits(answer.json(), error_schema), answer.json()
    assert served == document


def test_fastapis_own_error_body_does_not_fit_the_documented_one() -> None:
    schema = make_app().openapi()["components"]["schemas"]["ErrorResponse"]
    assert not fits({"detail": [{"msg": "field required"}]}, schema)
    assert not fits({"errors": []}, schema)
    assert not fits({"errors": [{"message": "x", "code": 1}]}, schema)
    assert fits({"errors": [{"message": "name is required", "field": "name"}]}, schema)
