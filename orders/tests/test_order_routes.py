"""The orders API: reserving a ticket, listing, showing and cancelling orders, every error."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from bson import ObjectId
from common.events import ChargeUpdated, OrderCancelled, OrderCreated, TicketCreated, TicketUpdated
from common.types import ceil_to_millisecond, utc_now
from gittix_testing import TestBus, http_client, running
from orders.app import create_app

TicketForSale = Callable[..., Awaitable[TicketCreated]]
PlaceOrder = Callable[..., Awaitable[dict[str, Any]]]
Headers = dict[str, str]
BUYER_ID = "64c000000000000000000002"
ALREADY_RESERVED = {"errors": [{"message": "Ticket is already reserved"}]}


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_reserving_a_ticket_creates_an_order_and_publishes_order_created(
    client: httpx.AsyncClient, buyer: Headers, ticket_for_sale: TicketForSale, bus: TestBus
) -> None:
    ticket = await ticket_for_sale(title="Concert", price="20.50")
    before = utc_now()

    response = await client.post("/api/orders", json={"ticketId": ticket.id}, headers=buyer)

    assert response.status_code == 201
    order = response.json()
    assert order == {
        "id": order["id"],
        "status": "created",
        "expiresAt": order["expiresAt"],
        "userId": BUYER_ID,
        "ticket": {"id": ticket.id, "title": "Concert", "price": 20.5},
        "version": 0,
    }
    assert order["expiresAt"].endswith("Z")
    expires_at = parse_time(order["expiresAt"])
    # The full lock, rounded up to the millisecond: never shorter than 900 s.
    latest = ceil_to_millisecond(utc_now() + timedelta(seconds=900))
    assert before + timedelta(seconds=900) <= expires_at <= latest
    event = await bus.wait_for(OrderCreated, id=order["id"])
    assert (event.version, event.status, event.user_id) == (0, "created", BUYER_ID)
    # One instant everywhere: what the API shows, what is stored, what the event carries.
    assert event.expires_at == expires_at
    shown = await client.get(f"/api/orders/{order['id']}", headers=buyer)
    assert shown.json()["expiresAt"] == order["expiresAt"]
    assert (event.ticket.id, event.ticket.price) == (ticket.id, Decimal("20.50"))


async def test_the_lock_lasts_order_expiration_seconds(
    monkeypatch: pytest.MonkeyPatch,
    service_env: dict[str, str],
    database: Any,
    bus: TestBus,
    buyer: Headers,
) -> None:
    monkeypatch.setenv("ORDER_EXPIRATION_SECONDS", "60")
    app = create_app(database=database)
    async with running(app), http_client(app) as client:
        ticket = TicketCreated(
            id=str(ObjectId()), version=0, title="Gig", price=Decimal(5), user_id="seller"
        )
        await bus.publish(ticket)
        await bus.wait_consumer_idle("orders-ticket-created-v1")
        before = utc_now()
        response = await client.post("/api/orders", json={"ticketId": ticket.id}, headers=buyer)

    expires_at = parse_time(response.json()["expiresAt"])
    latest = ceil_to_millisecond(utc_now() + timedelta(seconds=60))
    assert before + timedelta(seconds=60) <= expires_at <= latest


async def test_reserving_requires_a_signed_in_user(
    client: httpx.AsyncClient, ticket_for_sale: TicketForSale
) -> None:
    ticket = await ticket_for_sale()

    response = await client.post("/api/orders", json={"ticketId": ticket.id})

    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Not authorized"}]}


@pytest.mark.parametrize(
    "body",
    [{"ticketId": "not-an-id"}, {"ticketId": "1234"}, {"ticketId": 42}, {"ticketId": None}, {}],
)
async def test_reserving_with_a_malformed_ticket_id_is_400(
    client: httpx.AsyncClient, buyer: Headers, body: dict[str, Any]
) -> None:
    response = await client.post("/api/orders", json=body, headers=buyer)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [error["field"] for error in errors] == ["ticketId"]
    assert errors[0]["message"]


async def test_reserving_an_unknown_ticket_is_404(
    client: httpx.AsyncClient, buyer: Headers
) -> None:
    response = await client.post("/api/orders", json={"ticketId": str(ObjectId())}, headers=buyer)

    assert response.status_code == 404
    assert response.json() == {"errors": [{"message": "Ticket not found"}]}


async def test_a_reserved_ticket_cannot_be_reserved_again(
    client: httpx.AsyncClient,
    other_buyer: Headers,
    ticket_for_sale: TicketForSale,
    place_order: PlaceOrder,
    bus: TestBus,
) -> None:
    ticket = await ticket_for_sale()
    await place_order(ticket.id)

    response = await client.post("/api/orders", json={"ticketId": ticket.id}, headers=other_buyer)

    assert response.status_code == 400
    assert response.json() == ALREADY_RESERVED
    await bus.wait_for(OrderCreated)
    assert len(bus.published(OrderCreated)) == 1


async def test_fifty_simultaneous_buyers_get_exactly_one_order(
    client: httpx.AsyncClient,
    user_headers: Callable[[str], Headers],
    ticket_for_sale: TicketForSale,
    bus: TestBus,
) -> None:
    ticket = await ticket_for_sale()
    buyers = [user_headers(str(ObjectId())) for _ in range(50)]

    responses = await asyncio.gather(
        *(client.post("/api/orders", json={"ticketId": ticket.id}, headers=b) for b in buyers)
    )

    statuses = [response.status_code for response in responses]
    assert statuses.count(201) == 1
    assert statuses.count(400) == 49
    assert all(r.json() == ALREADY_RESERVED for r in responses if r.status_code == 400)
    winner = next(r.json() for r in responses if r.status_code == 201)
    await bus.wait_for(OrderCreated, id=winner["id"])
    assert len(bus.published(OrderCreated)) == 1


async def test_a_cancelled_order_releases_the_ticket_for_someone_else(
    client: httpx.AsyncClient,
    buyer: Headers,
    other_buyer: Headers,
    ticket_for_sale: TicketForSale,
    place_order: PlaceOrder,
) -> None:
    ticket = await ticket_for_sale()
    first = await place_order(ticket.id)
    assert (await client.delete(f"/api/orders/{first['id']}", headers=buyer)).status_code == 204

    second = await place_order(ticket.id, as_user=other_buyer)

    assert second["ticket"]["id"] == ticket.id and second["id"] != first["id"]


async def test_an_order_placed_after_a_ticket_update_shows_the_new_price(
    ticket_for_sale: TicketForSale,
    place_order: PlaceOrder,
    bus: TestBus,
    events: Any,
    settle: Callable[..., Awaitable[None]],
) -> None:
    ticket = await ticket_for_sale(title="Concert", price="20.50")
    await bus.publish(events.ticket_updated(ticket.id, 1, title="Concert (moved)", price="25"))
    await settle(TicketUpdated)

    order = await place_order(ticket.id)

    assert order["ticket"] == {"id": ticket.id, "title": "Concert (moved)", "price": 25}


async def test_listing_shows_only_the_callers_orders_newest_first(
    client: httpx.AsyncClient,
    buyer: Headers,
    other_buyer: Headers,
    ticket_for_sale: TicketForSale,
    place_order: PlaceOrder,
) -> None:
    first = await place_order((await ticket_for_sale(title="First")).id)
    await place_order((await ticket_for_sale(title="Theirs")).id, as_user=other_buyer)
    second = await place_order((await ticket_for_sale(title="Second")).id)

    response = await client.get("/api/orders", headers=buyer)

    assert response.status_code == 200
    assert response.json() == [second, first]


async def test_listing_comes_a_page_at_a_time_with_the_next_in_the_link_header(
    client: httpx.AsyncClient,
    buyer: Headers,
    ticket_for_sale: TicketForSale,
    place_order: PlaceOrder,
) -> None:
    placed = [await place_order((await ticket_for_sale(title=f"T{n}")).id) for n in range(3)]

    first = await client.get("/api/orders?limit=2", headers=buyer)
    link = first.headers["link"]
    assert link.startswith("</api/orders?") and link.endswith('>; rel="next"')
    second = await client.get(link[1 : link.index(">")], headers=buyer)

    assert first.json() == [placed[2], placed[1]]
    assert second.json() == [placed[0]] and "link" not in second.headers
    bad = await client.get("/api/orders?limit=500", headers=buyer)
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "limit"


async def test_listing_requires_a_signed_in_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/orders")

    assert response.status_code == 401


async def test_showing_an_order_to_its_owner(
    client: httpx.AsyncClient,
    buyer: Headers,
    ticket_for_sale: TicketForSale,
    place_order: PlaceOrder,
) -> None:
    order = await place_order((await ticket_for_sale()).id)

    response = await client.get(f"/api/orders/{order['id']}", headers=buyer)

    assert (response.status_code, response.json()) == (200, order)


async def test_someone_elses_order_is_403(
    client: httpx.AsyncClient,
    other_buyer: Headers,
    ticket_for_sale: TicketForSale,
    place_order: PlaceOrder,
) -> None:
    order = await place_order((await ticket_for_sale()).id)

    shown = await client.get(f"/api/orders/{order['id']}", headers=other_buyer)
    cancelled = await client.delete(f"/api/orders/{order['id']}", headers=other_buyer)

    assert (shown.status_code, cancelled.status_code) == (403, 403)
    assert shown.json()["errors"][0]["message"]


async def test_orders_require_a_signed_in_user(
    client: httpx.AsyncClient, ticket_for_sale: TicketForSale, place_order: PlaceOrder
) -> None:
    order = await place_order((await ticket_for_sale()).id)

    shown = await client.get(f"/api/orders/{order['id']}")
    cancelled = await client.delete(f"/api/orders/{order['id']}")

    assert (shown.status_code, cancelled.status_code) == (401, 401)


@pytest.mark.parametrize("order_id", [str(ObjectId()), "not-an-id"])
async def test_an_unknown_or_malformed_order_is_404(
    client: httpx.AsyncClient, buyer: Headers, order_id: str
) -> None:
    shown = await client.get(f"/api/orders/{order_id}", headers=buyer)
    cancelled = await client.delete(f"/api/orders/{order_id}", headers=buyer)

    assert (shown.status_code, cancelled.status_code) == (404, 404)
    assert shown.json()["errors"][0]["message"] in ("Order not found", "Not found")


async def test_cancelling_an_order_publishes_order_cancelled(
    client: httpx.AsyncClient,
    buyer: Headers,
    ticket_for_sale: TicketForSale,
    place_order: PlaceOrder,
    bus: TestBus,
) -> None:
    ticket = await ticket_for_sale()
    order = await place_order(ticket.id)

    response = await client.delete(f"/api/orders/{order['id']}", headers=buyer)

    assert (response.status_code, response.content) == (204, b"")
    shown = (await client.get(f"/api/orders/{order['id']}", headers=buyer)).json()
    assert (shown["status"], shown["version"]) == ("cancelled", 1)
    event = await bus.wait_for(OrderCancelled, id=order["id"])
    assert (event.version, event.ticket.id) == (1, ticket.id)


async def test_cancelling_twice_is_harmless_and_announced_once(
    client: httpx.AsyncClient,
    buyer: Headers,
    ticket_for_sale: TicketForSale,
    place_order: PlaceOrder,
    bus: TestBus,
) -> None:
    order = await place_order((await ticket_for_sale()).id)

    first = await client.delete(f"/api/orders/{order['id']}", headers=buyer)
    second = await client.delete(f"/api/orders/{order['id']}", headers=buyer)

    assert (first.status_code, second.status_code) == (204, 204)
    await bus.wait_for(OrderCancelled, id=order["id"])
    shown = (await client.get(f"/api/orders/{order['id']}", headers=buyer)).json()
    assert shown["version"] == 1
    assert len(bus.published(OrderCancelled)) == 1


async def test_a_completed_order_cannot_be_cancelled(
    client: httpx.AsyncClient,
    buyer: Headers,
    other_buyer: Headers,
    ticket_for_sale: TicketForSale,
    place_order: PlaceOrder,
    bus: TestBus,
    events: Any,
    settle: Callable[..., Awaitable[None]],
) -> None:
    ticket = await ticket_for_sale()
    order = await place_order(ticket.id)
    await bus.publish(events.charge_updated(order["id"], "completed"))
    await settle(ChargeUpdated)

    response = await client.delete(f"/api/orders/{order['id']}", headers=buyer)

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "Cannot cancel a completed order"}]}
    shown = (await client.get(f"/api/orders/{order['id']}", headers=buyer)).json()
    assert shown["status"] == "completed"
    # A sold ticket stays locked.
    again = await client.post("/api/orders", json={"ticketId": ticket.id}, headers=other_buyer)
    assert (again.status_code, again.json()) == (400, ALREADY_RESERVED)


async def test_unknown_routes_are_404_in_the_error_format(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/orders/1/nothing")

    assert (response.status_code, response.json()) == (404, {"errors": [{"message": "Not found"}]})
