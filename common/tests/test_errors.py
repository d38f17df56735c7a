"""Every error, ours or the framework's, is rendered as {"errors": [{message, field?}]}."""

from collections.abc import AsyncIterator

import httpx
import pytest
from common.errors import (
    ForbiddenError,
    NotFoundError,
    PaymentRequiredError,
    install_error_handlers,
)
from common.types import CamelModel, Price
from fastapi import FastAPI
from gittix_testing import http_client


class Body(CamelModel):
    title: str
    price: Price


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/things")
    async def create(body: Body) -> dict[str, str]:
        return {"title": body.title}

    @app.get("/forbidden")
    async def forbidden() -> None:
        raise ForbiddenError()

    @app.get("/declined")
    async def declined() -> None:
        raise PaymentRequiredError("Your card was declined.")

    @app.get("/missing")
    async def missing() -> None:
        raise NotFoundError("Ticket not found")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail")

    async with http_client(app) as http:
        yield http


async def test_validation_errors_are_400_with_field_names(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"title": "x", "price": -1})

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "price"


async def test_wrong_types_and_unknown_fields_are_400(client: httpx.AsyncClient) -> None:
    wrong_type = await client.post("/things", json={"title": "x", "price": "10"})
    unknown = await client.post("/things", json={"title": "x", "price": 10, "colour": "red"})
    too_precise = await client.post("/things", json={"title": "x", "price": 1.005})

    assert [r.status_code for r in (wrong_type, unknown, too_precise)] == [400, 400, 400]
    assert unknown.json()["errors"][0]["field"] == "colour"


async def test_missing_fields_are_named(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={})

    assert response.status_code == 400
    messages = sorted(error["message"] for error in response.json()["errors"])
    assert messages == ["price is required", "title is required"]


async def test_malformed_json_and_missing_body(client: httpx.AsyncClient) -> None:
    malformed = await client.post(
        "/things", content=b"{", headers={"content-type": "application/json"}
    )
    empty = await client.post("/things")

    assert malformed.status_code == empty.status_code == 400
    assert malformed.json() == {"errors": [{"message": "Request body is not valid JSON"}]}
    assert empty.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/forbidden", 403, "Forbidden"),
        ("/declined", 402, "Your card was declined."),
        ("/missing", 404, "Ticket not found"),
        ("/no/such/route", 404, "Not found"),
        ("/boom", 500, "Something went wrong"),
    ],
)
async def test_errors_render_in_the_common_format(
    client: httpx.AsyncClient, path: str, status: int, message: str
) -> None:
    response = await client.get(path)

    assert response.status_code == status
    assert response.json() == {"errors": [{"message": message}]}


async def test_wrong_method_is_405_in_the_common_format(client: httpx.AsyncClient) -> None:
    response = await client.delete("/things")

    assert response.status_code == 405
    assert response.json() == {"errors": [{"message": "Method not allowed"}]}
