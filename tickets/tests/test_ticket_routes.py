"""The tickets API: selling, listing, showing and editing tickets, with every error."""

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from bson import ObjectId
from common.events import TicketCreated, TicketUpdated
from gittix_testing import TestBus
from tickets.repository import TICKETS

Sell = Callable[..., Awaitable[dict[str, Any]]]
Headers = dict[str, str]
SELLER_ID = "64b000000000000000000001"


async def test_selling_a_ticket_returns_it_and_publishes_ticket_created(
    client: httpx.AsyncClient, seller: Headers, bus: TestBus
) -> None:
    response = await client.post(
        "/api/tickets", json={"title": "  Concert  ", "price": 20.5}, headers=seller
    )

    assert response.status_code == 201
    ticket = response.json()
    assert ticket == {
        "id": ticket["id"],
        "title": "Concert",
        "price": 20.5,
        "userId": SELLER_ID,
        "orderId": None,
        "version": 0,
    }
    event = await bus.wait_for(TicketCreated, id=ticket["id"])
    assert (event.title, event.price, event.user_id, event.version) == (
        "Concert",
        Decimal("20.50"),
        SELLER_ID,
        0,
    )


@pytest.mark.parametrize("price", [19.99, 0.5, 999999.99, 100])
async def test_prices_are_kept_exactly(
    client: httpx.AsyncClient, sell: Sell, database: Any, bus: TestBus, price: float
) -> None:
    ticket = await sell(price=price)

    shown = await client.get(f"/api/tickets/{ticket['id']}")
    stored = await database[TICKETS].find_one({"_id": ObjectId(ticket["id"])})
    event = await bus.wait_for(TicketCreated, id=ticket["id"])
    assert shown.json()["price"] == price
    assert stored["price_cents"] == round(price * 100)
    assert event.price == Decimal(str(price))


async def test_selling_requires_a_signed_in_user(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/tickets", json={"title": "Concert", "price": 10})

    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Not authorized"}]}


INVALID_TICKETS: list[tuple[dict[str, Any], str]] = [
    ({"price": 10}, "title"),
    ({"title": "", "price": 10}, "title"),
    ({"title": "   ", "price": 10}, "title"),
    ({"title": "x" * 121, "price": 10}, "title"),
    ({"title": 42, "price": 10}, "title"),
    ({"title": "Concert"}, "price"),
    ({"title": "Concert", "price": 0}, "price"),
    ({"title": "Concert", "price": -10}, "price"),
    ({"title": "Concert", "price": 10.001}, "price"),
    ({"title": "Concert", "price": "10"}, "price"),
    ({"title": "Concert", "price": None}, "price"),
    ({"title": "Concert", "price": True}, "price"),
]


@pytest.mark.parametrize(("body", "field"), INVALID_TICKETS)
async def test_selling_rejects_invalid_tickets_naming_the_field(
    client: httpx.AsyncClient, seller: Headers, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/tickets", json=body, headers=seller)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [error["field"] for error in errors] == [field]
    assert errors[0]["message"]


async def test_a_title_of_120_characters_is_accepted(sell: Sell) -> None:
    ticket = await sell(title="x" * 120)

    assert ticket["title"] == "x" * 120


async def test_malformed_json_is_a_400(client: httpx.AsyncClient, seller: Headers) -> None:
    response = await client.post(
        "/api/tickets",
        content=b"{nope",
        headers={**seller, "content-type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "Request body is not valid JSON"}]}


async def test_listing_shows_unreserved_tickets_newest_first(
    client: httpx.AsyncClient,
    sell: Sell,
    bus: TestBus,
    order_created: Callable[..., Any],
) -> None:
    first = await sell(title="First")
    second = await sell(title="Second")
    third = await sell(title="Third")
    await bus.publish(order_created(second["id"]))
    await bus.wait_for(TicketUpdated, id=second["id"])

    response = await client.get("/api/tickets")

    assert response.status_code == 200
    assert [ticket["title"] for ticket in response.json()] == ["Third", "First"]
    assert response.json()[1] == first
    assert third in response.json()


async def test_listing_is_empty_without_tickets(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/tickets")

    assert (response.status_code, response.json()) == (200, [])


async def test_showing_a_ticket(client: httpx.AsyncClient, sell: Sell) -> None:
    ticket = await sell()

    response = await client.get(f"/api/tickets/{ticket['id']}")

    assert (response.status_code, response.json()) == (200, ticket)


@pytest.mark.parametrize("ticket_id", [str(ObjectId()), "not-an-id", "64b00000000000000000000"])
async def test_showing_an_unknown_or_malformed_ticket_is_404(
    client: httpx.AsyncClient, ticket_id: str
) -> None:
    response = await client.get(f"/api/tickets/{ticket_id}")

    assert response.status_code == 404
    assert response.json()["errors"][0]["message"]


async def test_the_owner_edits_a_ticket_and_ticket_updated_is_published(
    client: httpx.AsyncClient, sell: Sell, seller: Headers, bus: TestBus
) -> None:
    ticket = await sell(title="Concert", price=20)

    response = await client.put(
        f"/api/tickets/{ticket['id']}",
        json={"title": "Concert (front row)", "price": 35.25},
        headers=seller,
    )

    assert response.status_code == 200
    assert response.json() == {
        **ticket,
        "title": "Concert (front row)",
        "price": 35.25,
        "version": 1,
    }
    event = await bus.wait_for(TicketUpdated, id=ticket["id"])
    assert (event.version, event.title, event.price, event.order_id) == (
        1,
        "Concert (front row)",
        Decimal("35.25"),
        None,
    )
    shown = await client.get(f"/api/tickets/{ticket['id']}")
    assert shown.json()["version"] == 1


async def test_someone_else_cannot_edit_a_ticket(
    client: httpx.AsyncClient, sell: Sell, stranger: Headers
) -> None:
    ticket = await sell()

    response = await client.put(
        f"/api/tickets/{ticket['id']}", json={"title": "Mine now", "price": 1}, headers=stranger
    )

    assert response.status_code == 403
    assert response.json()["errors"][0]["message"]
    assert (await client.get(f"/api/tickets/{ticket['id']}")).json() == ticket


async def test_editing_requires_a_signed_in_user(client: httpx.AsyncClient, sell: Sell) -> None:
    ticket = await sell()

    response = await client.put(f"/api/tickets/{ticket['id']}", json={"title": "X", "price": 1})

    assert response.status_code == 401


@pytest.mark.parametrize("ticket_id", [str(ObjectId()), "not-an-id"])
async def test_editing_an_unknown_or_malformed_ticket_is_404(
    client: httpx.AsyncClient, seller: Headers, ticket_id: str
) -> None:
    response = await client.put(
        f"/api/tickets/{ticket_id}", json={"title": "X", "price": 1}, headers=seller
    )

    assert response.status_code == 404


@pytest.mark.parametrize(("body", "field"), INVALID_TICKETS)
async def test_editing_rejects_invalid_tickets_naming_the_field(
    client: httpx.AsyncClient, sell: Sell, seller: Headers, body: dict[str, Any], field: str
) -> None:
    ticket = await sell()

    response = await client.put(f"/api/tickets/{ticket['id']}", json=body, headers=seller)

    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == [field]


async def test_a_reserved_ticket_cannot_be_edited(
    client: httpx.AsyncClient,
    sell: Sell,
    seller: Headers,
    bus: TestBus,
    order_created: Callable[..., Any],
) -> None:
    ticket = await sell()
    await bus.publish(order_created(ticket["id"]))
    await bus.wait_for(TicketUpdated, id=ticket["id"])

    response = await client.put(
        f"/api/tickets/{ticket['id']}", json={"title": "Changed", "price": 99}, headers=seller
    )

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "Cannot edit a reserved ticket"}]}
    assert (await client.get(f"/api/tickets/{ticket['id']}")).json()["title"] == "Concert"


async def test_unknown_routes_are_404_in_the_error_format(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/tickets/1/nothing-here")

    assert response.status_code == 404
    assert response.json() == {"errors": [{"message": "Not found"}]}
