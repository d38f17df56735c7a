"""tickets' fixtures: the common plugin's app/client/bus built from tickets' create_app, signed-in
users, and builders for the order events tickets listens to."""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from bson import ObjectId
from common.events import (
    OrderCancelled,
    OrderCreated,
    OrderStatus,
    OrderUpdated,
    TicketPriceRef,
    TicketRef,
)
from common.types import utc_now
from fastapi import FastAPI
from tickets.app import create_app

SELLER_ID = "64b000000000000000000001"
BUYER_ID = "64b000000000000000000002"
CREATED_DURABLE = "tickets-order-created-v1"
CANCELLED_DURABLE = "tickets-order-cancelled-v1"

Headers = dict[str, str]


@pytest.fixture
def app_factory() -> Callable[..., FastAPI]:
    return create_app


def _as_header(cookies: dict[str, str]) -> Headers:
    return {"cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}


@pytest.fixture
def seller(session_cookie: Callable[..., dict[str, str]]) -> Headers:
    """Request headers of the signed-in seller."""
    return _as_header(session_cookie(SELLER_ID, "seller@example.com"))


@pytest.fixture
def stranger(session_cookie: Callable[..., dict[str, str]]) -> Headers:
    """Request headers of someone signed in who does not own the tickets."""
    return _as_header(session_cookie(BUYER_ID, "buyer@example.com"))


@pytest.fixture
def sell(client: httpx.AsyncClient, seller: Headers) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Put a ticket up for sale as the seller; returns the ticket as the API shows it."""

    async def sell(title: str = "Concert", price: float = 20.5) -> dict[str, Any]:
        response = await client.post(
            "/api/tickets", json={"title": title, "price": price}, headers=seller
        )
        assert response.status_code == 201, response.text
        return response.json()

    return sell


def _order_created(ticket_id: str, order_id: str | None = None) -> OrderCreated:
    return OrderCreated(
        id=order_id or str(ObjectId()),
        version=0,
        status="created",
        user_id=BUYER_ID,
        expires_at=utc_now() + timedelta(minutes=15),
        ticket=TicketPriceRef(id=ticket_id, price=Decimal("20.50")),
    )


def _order_cancelled(ticket_id: str, order_id: str, version: int = 1) -> OrderCancelled:
    return OrderCancelled(id=order_id, version=version, ticket=TicketRef(id=ticket_id))


def _order_updated(
    order_id: str, status: OrderStatus = "completed", version: int = 2
) -> OrderUpdated:
    return OrderUpdated(id=order_id, version=version, status=status)


@pytest.fixture
def order_created() -> Callable[..., OrderCreated]:
    """order_created(ticket_id, order_id=None): an OrderCreated as orders would publish it."""
    return _order_created


@pytest.fixture
def order_cancelled() -> Callable[..., OrderCancelled]:
    """order_cancelled(ticket_id, order_id, version=1): an OrderCancelled as orders publishes it."""
    return _order_cancelled


@pytest.fixture
def order_updated() -> Callable[..., OrderUpdated]:
    """order_updated(order_id, status="completed", version=2): an OrderUpdated as orders
    publishes it (version 2 is completed after awaiting_payment)."""
    return _order_updated
