"""Nothing lost between the database and the bus: an order change whose publishing was cut short
by a crash still reaches the bus exactly once; racing changes never lose a version."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
from bson import ObjectId
from common.events import (
    ChargeUpdated,
    Envelope,
    OrderCancelled,
    OrderCreated,
    OrderUpdated,
    TicketCreated,
)
from common.messaging import STREAM_NAME
from common.outbox import Outbox
from common.types import utc_now
from fastapi import FastAPI
from gittix_testing import TestBus, http_client, running
from orders.app import create_app
from orders.contract import CONTRACT

from orders import repository, service

Eventually = Callable[..., Awaitable[None]]
Headers = dict[str, str]
TICKET = {"_id": ObjectId(), "title": "Concert", "price_cents": 2050}
# Writes made with no relay attached, as a process that dies before its relay runs leaves them.
OUTBOX = Outbox(CONTRACT.publishes, service=CONTRACT.name)


async def outbox_empty(database: Any, order_id: ObjectId) -> bool:
    document = await database[repository.ORDERS].find_one({"_id": order_id})
    return document["outbox"] == []


async def stored_orders_events(bus: TestBus) -> int:
    info = await bus.js.stream_info(STREAM_NAME, subjects_filter="ticketing.order.>")
    return sum((info.state.subjects or {}).values())


async def test_an_order_written_while_the_service_was_down_is_published_once_on_start(
    service_env: dict[str, str], database: Any, bus: TestBus, eventually: Eventually
) -> None:
    order = await service.create_order(
        database,
        OUTBOX,
        ticket=TICKET,
        user_id="u1",
        expires_at=utc_now() + timedelta(minutes=15),
        slot=0,
    )
    assert bus.published(OrderCreated) == []

    async with running(create_app(database=database)):
        event = await bus.wait_for(OrderCreated, id=str(order["_id"]))
        await eventually(lambda: outbox_empty(database, order["_id"]))

    assert (event.ticket.price, event.version) == (Decimal("20.50"), 0)
    assert await stored_orders_events(bus) == 1


async def test_a_relay_that_died_after_publishing_does_not_publish_the_event_twice(
    service_env: dict[str, str], database: Any, bus: TestBus, eventually: Eventually
) -> None:
    order = await service.create_order(
        database,
        OUTBOX,
        ticket=TICKET,
        user_id="u1",
        expires_at=utc_now() + timedelta(minutes=15),
        slot=0,
    )
    pending = Envelope.model_validate(order["outbox"][0])
    assert await bus.publish_envelope(pending) is True  # published, then the relay died

    async with running(create_app(database=database)):
        await eventually(lambda: outbox_empty(database, order["_id"]))

    assert await stored_orders_events(bus) == 1
    assert [envelope.id for envelope in bus.recorder.envelopes(OrderCreated)] == [pending.id]


async def test_a_cancellation_whose_relay_was_stopped_is_published_once_after_a_restart(
    service_env: dict[str, str],
    database: Any,
    bus: TestBus,
    buyer: Headers,
    eventually: Eventually,
) -> None:
    ticket = TicketCreated(
        id=str(ObjectId()), version=0, title="Gig", price=Decimal(5), user_id="seller"
    )
    app: FastAPI = create_app(database=database)
    async with running(app), http_client(app) as client:
        await bus.publish(ticket)
        await bus.wait_consumer_idle("orders-ticket-created-v1")
        created = await client.post("/api/orders", json={"ticketId": ticket.id}, headers=buyer)
        order_id = created.json()["id"]
        await bus.wait_for(OrderCreated, id=order_id)
        await app.state.runtime.relay.stop()  # the relay dies; the service still takes writes
        cancelled = await client.delete(f"/api/orders/{order_id}", headers=buyer)
        assert cancelled.status_code == 204

    assert bus.published(OrderCancelled) == []
    async with running(create_app(database=database)):
        event = await bus.wait_for(OrderCancelled, id=order_id)
        await eventually(lambda: outbox_empty(database, ObjectId(order_id)))

    assert event.version == 1
    assert await stored_orders_events(bus) == 2


async def test_a_cancellation_racing_a_completed_charge_loses_no_version(
    client: httpx.AsyncClient,
    buyer: Headers,
    ticket_for_sale: Callable[..., Awaitable[TicketCreated]],
    place_order: Callable[..., Awaitable[dict[str, Any]]],
    bus: TestBus,
    events: Any,
    settle: Callable[..., Awaitable[None]],
) -> None:
    order = await place_order((await ticket_for_sale()).id)

    cancel, _ = await asyncio.gather(
        client.delete(f"/api/orders/{order['id']}", headers=buyer),
        bus.publish(events.charge_updated(order["id"], "completed")),
    )
    await settle(ChargeUpdated)

    shown = (await client.get(f"/api/orders/{order['id']}", headers=buyer)).json()
    if cancel.status_code == 204:
        # The cancellation won: the payment arrived too late and changes nothing.
        assert (shown["status"], shown["version"]) == ("cancelled", 1)
        announced = await bus.wait_for(OrderCancelled, id=order["id"])
    else:
        assert cancel.status_code == 400
        assert (shown["status"], shown["version"]) == ("completed", 1)
        announced = await bus.wait_for(OrderUpdated, id=order["id"])
    assert announced.version == 1
    assert len(bus.published(OrderCancelled)) + len(bus.published(OrderUpdated)) == 1
