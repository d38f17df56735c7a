"""orders' fixtures: the common plugin's app/client/bus built from orders' create_app, signed-in
buyers, tickets put into the replica through the bus, and builders for the events orders hears."""

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from bson import ObjectId
from common.events import ChargeCreated, ChargeUpdated, OrderExpired, TicketCreated, TicketUpdated
from fastapi import FastAPI
from gittix_testing import TestBus
from orders.app import create_app

SELLER_ID = "64c000000000000000000001"
BUYER_ID = "64c000000000000000000002"
OTHER_BUYER_ID = "64c000000000000000000003"

Headers = dict[str, str]


@pytest.fixture
def app_factory() -> Callable[..., FastAPI]:
    return create_app


@pytest.fixture
def user_headers(session_cookie: Callable[..., dict[str, str]]) -> Callable[[str], Headers]:
    """user_headers(user_id): request headers carrying that user's session."""

    def headers(user_id: str) -> Headers:
        cookies = session_cookie(user_id, f"{user_id}@example.com")
        return {"cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}

    return headers


@pytest.fixture
def buyer(user_headers: Callable[[str], Headers]) -> Headers:
    return user_headers(BUYER_ID)


@pytest.fixture
def other_buyer(user_headers: Callable[[str], Headers]) -> Headers:
    return user_headers(OTHER_BUYER_ID)


def ticket_created(
    ticket_id: str | None = None, *, title: str = "Concert", price: str = "20.50"
) -> TicketCreated:
    return TicketCreated(
        id=ticket_id or str(ObjectId()),
        version=0,
        title=title,
        price=Decimal(price),
        user_id=SELLER_ID,
    )


def ticket_updated(
    ticket_id: str,
    version: int,
    *,
    title: str = "Concert",
    price: str = "20.50",
    order_id: str | None = None,
) -> TicketUpdated:
    return TicketUpdated(
        id=ticket_id,
        version=version,
        title=title,
        price=Decimal(price),
        user_id=SELLER_ID,
        order_id=order_id,
    )


def charge_created(order_id: str, charge_id: str | None = None) -> ChargeCreated:
    return ChargeCreated(
        id=charge_id or str(ObjectId()), version=0, order_id=order_id, status="created", amount=2050
    )


def charge_updated(
    order_id: str,
    status: str,
    *,
    charge_id: str | None = None,
    version: int = 1,
    refund_id: str | None = None,
) -> ChargeUpdated:
    return ChargeUpdated(
        id=charge_id or str(ObjectId()),
        version=version,
        order_id=order_id,
        status=status,  # type: ignore[arg-type]
        amount=2050,
        stripe_id="pi_test" if status == "completed" else None,
        stripe_refund_id=refund_id,
    )


def order_expired(order_id: str) -> OrderExpired:
    return OrderExpired(order_id=order_id)


class EventBuilders:
    """The events other services publish, as orders hears them."""

    ticket_created = staticmethod(ticket_created)
    ticket_updated = staticmethod(ticket_updated)
    charge_created = staticmethod(charge_created)
    charge_updated = staticmethod(charge_updated)
    order_expired = staticmethod(order_expired)


@pytest.fixture
def events() -> type[EventBuilders]:
    return EventBuilders


def durable(event: type[Any]) -> str:
    return "orders-" + event.subject.removeprefix("ticketing.").replace(".", "-")


@pytest.fixture
def settle(bus: TestBus) -> Callable[[type[Any]], Awaitable[None]]:
    """settle(EventType): wait until orders' listener for that event has handled all it got."""

    async def settle(event: type[Any]) -> None:
        await bus.wait_consumer_idle(durable(event))

    return settle


@pytest.fixture
def ticket_for_sale(app: FastAPI, bus: TestBus) -> Callable[..., Awaitable[TicketCreated]]:
    """Announce a ticket (as the tickets service would) and wait until the replica has it."""

    async def announce(**fields: Any) -> TicketCreated:
        event = ticket_created(**fields)
        await bus.publish(event)
        await bus.wait_consumer_idle(durable(TicketCreated))
        return event

    return announce


async def order_ticket(
    client: httpx.AsyncClient, headers: Headers, ticket_id: str
) -> httpx.Response:
    """POST /api/orders for that ticket as whoever `headers` signs in, whatever the answer."""
    return await client.post("/api/orders", json={"ticketId": ticket_id}, headers=headers)


@pytest.fixture
def place_order(
    client: httpx.AsyncClient, buyer: Headers
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Reserve a ticket as the buyer (or `as_user`); returns the order as the API shows it."""

    async def place(ticket_id: str, as_user: Headers | None = None) -> dict[str, Any]:
        response = await order_ticket(client, as_user or buyer, ticket_id)
        assert response.status_code == 201, response.text
        return response.json()

    return place
