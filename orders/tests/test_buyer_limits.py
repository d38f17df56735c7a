"""Hoarding: a seller cannot order their own ticket, a buyer holds at most 5 unpaid orders (even
when the requests arrive together), and reserving is rate-limited per user."""

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from bson import ObjectId
from common.events import ChargeUpdated, OrderCreated, OrderExpired, TicketCreated
from conftest import BUYER_ID, order_ticket
from fastapi import FastAPI
from gittix_testing import TestBus, http_client, running
from orders.app import create_app
from orders.settings import Settings

from orders import repository

TicketForSale = Callable[..., Awaitable[TicketCreated]]
PlaceOrder = Callable[..., Awaitable[dict[str, Any]]]
Settle = Callable[[type[Any]], Awaitable[None]]
Headers = dict[str, str]
TOO_MANY = {
    "errors": [
        {
            "message": "You already hold 5 orders waiting for payment. "
            "Pay for or cancel one before reserving another ticket."
        }
    ]
}


@pytest.fixture
def app_factory() -> Callable[..., FastAPI]:
    # A rate limit out of the way: these tests are about the other rules.
    return lambda **kwargs: create_app(Settings(orders_rate_limit=1000), **kwargs)  # type: ignore[call-arg]


async def tickets(ticket_for_sale: TicketForSale, count: int) -> list[TicketCreated]:
    return [await ticket_for_sale(title=f"Seat {number}") for number in range(count)]


# --- own tickets -------------------------------------------------------------------------------


async def test_a_seller_cannot_order_their_own_ticket(
    client: httpx.AsyncClient,
    buyer: Headers,
    other_buyer: Headers,
    bus: TestBus,
    settle: Settle,
) -> None:
    own = TicketCreated(
        id=str(ObjectId()), version=0, title="Mine", price=Decimal("30"), user_id=BUYER_ID
    )
    await bus.publish(own)
    await settle(TicketCreated)

    response = await order_ticket(client, buyer, own.id)

    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"message": "You cannot order your own ticket", "field": "ticketId"}]
    }
    assert (await client.get("/api/orders", headers=buyer)).json() == []
    # Still on sale to everyone else.
    assert (await order_ticket(client, other_buyer, own.id)).status_code == 201
    assert [event.user_id for event in bus.published(OrderCreated)] != [BUYER_ID]


# --- unpaid orders per buyer -------------------------------------------------------------------


async def test_a_buyer_holds_at_most_five_unpaid_orders(
    client: httpx.AsyncClient,
    buyer: Headers,
    other_buyer: Headers,
    ticket_for_sale: TicketForSale,
) -> None:
    sixth, *five = await tickets(ticket_for_sale, 6)
    for ticket in five:
        assert (await order_ticket(client, buyer, ticket.id)).status_code == 201

    refused = await order_ticket(client, buyer, sixth.id)

    assert refused.status_code == 400
    assert refused.json() == TOO_MANY
    assert len((await client.get("/api/orders", headers=buyer)).json()) == 5
    # The limit is the buyer's, not the ticket's: someone else can still reserve it.
    assert (await order_ticket(client, other_buyer, sixth.id)).status_code == 201


async def test_paying_cancelling_or_expiring_frees_a_place(
    client: httpx.AsyncClient,
    buyer: Headers,
    ticket_for_sale: TicketForSale,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    more = await tickets(ticket_for_sale, 8)
    orders = [(await order_ticket(client, buyer, ticket.id)).json() for ticket in more[:5]]
    assert (await order_ticket(client, buyer, more[5].id)).json() == TOO_MANY

    # Paid: a completed order is a purchase, not a hold.
    await bus.publish(events.charge_updated(orders[0]["id"], "completed"))
    await settle(ChargeUpdated)
    assert (await order_ticket(client, buyer, more[5].id)).status_code == 201
    assert (await order_ticket(client, buyer, more[6].id)).json() == TOO_MANY

    # Cancelled by the buyer.
    deleted = await client.delete(f"/api/orders/{orders[1]['id']}", headers=buyer)
    assert deleted.status_code == 204
    assert (await order_ticket(client, buyer, more[6].id)).status_code == 201
    assert (await order_ticket(client, buyer, more[7].id)).json() == TOO_MANY

    # Expired.
    await bus.publish(events.order_expired(orders[2]["id"]))
    await settle(OrderExpired)
    assert (await order_ticket(client, buyer, more[7].id)).status_code == 201


async def test_a_refused_reservation_holds_no_place(
    client: httpx.AsyncClient,
    buyer: Headers,
    other_buyer: Headers,
    ticket_for_sale: TicketForSale,
) -> None:
    taken, *mine = await tickets(ticket_for_sale, 6)
    assert (await order_ticket(client, other_buyer, taken.id)).status_code == 201
    for _ in range(3):
        assert (await order_ticket(client, buyer, taken.id)).status_code == 400

    for ticket in mine:
        assert (await order_ticket(client, buyer, ticket.id)).status_code in (201, 400)
    statuses = [
        order["status"] for order in (await client.get("/api/orders", headers=buyer)).json()
    ]

    assert statuses == ["created"] * 5


async def test_simultaneous_reservations_cannot_pass_the_limit(
    client: httpx.AsyncClient,
    buyer: Headers,
    ticket_for_sale: TicketForSale,
    database: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wanted = await tickets(ticket_for_sale, 9)
    # The worst interleaving a script can hope for: every request reads the buyer's orders before
    # any of them writes, so each one sees five free places.
    read_slots = repository.taken_slots
    arrived, everyone_read = 0, asyncio.Event()

    async def read_together(db: Any, *, user_id: str) -> set[int]:
        nonlocal arrived
        slots = await read_slots(db, user_id=user_id)
        if arrived < len(wanted):
            arrived += 1
            if arrived == len(wanted):
                everyone_read.set()
            await asyncio.wait_for(everyone_read.wait(), timeout=10)
        return slots

    monkeypatch.setattr(repository, "taken_slots", read_together)

    responses = await asyncio.gather(*(order_ticket(client, buyer, ticket.id) for ticket in wanted))

    assert everyone_read.is_set()
    assert sorted(response.status_code for response in responses) == [201] * 5 + [400] * 4
    assert all(r.json() == TOO_MANY for r in responses if r.status_code == 400)
    held = await database[repository.ORDERS].count_documents({"user_id": BUYER_ID})
    assert held == 5


# --- rate limit --------------------------------------------------------------------------------


async def test_reserving_is_rate_limited_per_user_with_retry_after(
    service_env: dict[str, str],
    database: Any,
    bus: TestBus,
    buyer: Headers,
    other_buyer: Headers,
) -> None:
    # A window far longer than the test, so no window can end in the middle of it.
    settings = Settings(orders_rate_limit=3, orders_rate_window_seconds=3600)  # type: ignore[call-arg]
    app = create_app(settings, database=database)
    async with running(app), http_client(app) as client:
        ticket = TicketCreated(
            id=str(ObjectId()), version=0, title="Gig", price=Decimal(5), user_id="seller"
        )
        await bus.publish(ticket)
        await bus.wait_consumer_idle("orders-ticket-created-v1")
        # Refused attempts count as much as successful ones.
        attempts = [
            await order_ticket(client, buyer, str(ObjectId())),
            await order_ticket(client, buyer, ticket.id),
            await order_ticket(client, buyer, ticket.id),
        ]
        assert [response.status_code for response in attempts] == [404, 201, 400]

        throttled = await order_ticket(client, buyer, str(ObjectId()))
        someone_else = await order_ticket(client, other_buyer, str(ObjectId()))

    assert throttled.status_code == 429
    assert throttled.json() == {
        "errors": [{"message": "Too many attempts to reserve tickets. Please wait and try again."}]
    }
    assert 1 <= int(throttled.headers["retry-after"]) <= 3600
    # Each user has their own budget.
    assert someone_else.status_code == 404


# --- request guards, as every service has them ------------------------------------------------


async def test_reserving_or_cancelling_from_another_site_is_403(
    client: httpx.AsyncClient,
    buyer: Headers,
    ticket_for_sale: TicketForSale,
    place_order: PlaceOrder,
) -> None:
    first, second = await tickets(ticket_for_sale, 2)
    order = await place_order(first.id)
    cross_site = {**buyer, "origin": "https://evil.example", "sec-fetch-site": "cross-site"}

    reserved = await order_ticket(client, cross_site, second.id)
    cancelled = await client.delete(f"/api/orders/{order['id']}", headers=cross_site)

    assert (reserved.status_code, cancelled.status_code) == (403, 403)
    assert reserved.json() == {"errors": [{"message": "Cross-site request refused"}]}
    shown = await client.get(f"/api/orders/{order['id']}", headers=buyer)
    assert shown.json()["status"] == "created"
    assert len((await client.get("/api/orders", headers=buyer)).json()) == 1
    same_site = {**buyer, "origin": "https://testserver", "sec-fetch-site": "same-origin"}
    assert (await order_ticket(client, same_site, second.id)).status_code == 201


async def test_a_body_over_64_kib_is_413(client: httpx.AsyncClient, buyer: Headers) -> None:
    padded = b'{"ticketId": "' + b" " * (64 * 1024) + b'"}'

    response = await client.post(
        "/api/orders", content=padded, headers={**buyer, "content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json() == {
        "errors": [{"message": "Request body is too large (at most 64 KiB)"}]
    }
