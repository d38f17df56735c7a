"""Every error, ours or the framework's, is rendered as {"errors": [{message, field?}]}."""

from collections.abc import AsyncIterator

import httpx
import pytest
from common.domain_errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    InvalidState,
    NotFound,
    PaymentDeclined,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from common.errors import install_error_handlers
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
        raise Forbidden()

    @app.get("/declined")
    async def declined() -> None:
        raise PaymentDeclined("Your card was declined.")

    @app.get("/missing")
    async def missing() -> None:
        raise NotFound("Ticket not found")

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


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (
            Conflict("Email in use", field="email"),
            400,
            {"message": "Email in use", "field": "email"},
        ),
        (
            InvalidState("Cannot edit a reserved ticket"),
            400,
            {"message": "Cannot edit a reserved ticket"},
        ),
        (Invalid("Bad"), 400, {"message": "Bad"}),
        (Unauthenticated(), 401, {"message": "Not authorized"}),
        (Forbidden("Not yours"), 403, {"message": "Not yours"}),
        (NotFound(), 404, {"message": "Not found"}),
        (
            Unavailable("Payment service unavailable"),
            503,
            {"message": "Payment service unavailable"},
        ),
    ],
)
async def test_domain_errors_become_their_http_status_at_the_edge(
    error: DomainError, status: int, body: dict[str, str]
) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/rule")
    async def rule() -> None:
        raise error

    async with http_client(app) as http:
        response = await http.get("/rule")

    assert response.status_code == status
    assert response.json() == {"errors": [body]}


async def test_rate_limited_is_429_with_retry_after() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/again")
    async def again() -> None:
        raise RateLimited("Slow down", retry_after_seconds=7)

    async with http_client(app) as http:
        response = await http.get("/again")

    assert (response.status_code, response.headers["Retry-After"]) == (429, "7")
    assert response.json() == {"errors": [{"message": "Slow down"}]}


async def test_unavailable_carries_retry_after_when_it_knows_one() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/busy")
    async def busy() -> None:
        raise Unavailable("Too busy", retry_after_seconds=2)

    @app.get("/down")
    async def down() -> None:
        raise Unavailable("Down")

    async with http_client(app) as http:
        busy_response = await http.get("/busy")
        down_response = await http.get("/down")

    assert (busy_response.status_code, busy_response.headers["Retry-After"]) == (503, "2")
    assert busy_response.json() == {"errors": [{"message": "Too busy"}]}
    assert down_response.status_code == 503
    assert "retry-after" not in down_response.headers
