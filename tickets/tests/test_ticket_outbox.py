"""Nothing lost between the database and the bus: a crash between writing a change and publishing
its event delays the event but never loses or doubles it."""

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
from bson import ObjectId
from common.events import Envelope, TicketCreated, TicketUpdated
from common.messaging import STREAM_NAME
from common.outbox import Outbox
from fastapi import FastAPI
from gittix_testing import TestBus, http_client, running
from tickets.app import create_app
from tickets.contract import CONTRACT

from tickets import repository, service

Eventually = Callable[..., Awaitable[None]]
Headers = dict[str, str]
# Writes made with no relay attached, as a process that dies before its relay runs leaves them.
OUTBOX = Outbox(CONTRACT.publishes, service=CONTRACT.name)


async def outbox_empty(database: Any, ticket_id: ObjectId) -> bool:
    document = await database[repository.TICKETS].find_one({"_id": ticket_id})
    return document["outbox"] == []


async def stream_message_count(bus: TestBus) -> int:
    return (await bus.js.stream_info(STREAM_NAME)).state.messages


async def test_a_ticket_written_while_the_service_was_down_is_published_once_on_start(
    service_env: dict[str, str], database: Any, bus: TestBus, eventually: Eventually
) -> None:
    # The write landed, then the process died before its relay ran.
    ticket = await service.create_ticket(
        database, OUTBOX, title="Concert", price=Decimal("20.00"), user_id="u1"
    )
    assert bus.published(TicketCreated) == []

    async with running(create_app(database=database)):
        event = await bus.wait_for(TicketCreated, id=str(ticket["_id"]))
        await eventually(lambda: outbox_empty(database, ticket["_id"]))

    assert event.price == Decimal("20.00")
    assert await stream_message_count(bus) == 1


async def test_an_edit_whose_relay_was_stopped_is_published_once_after_a_restart(
    service_env: dict[str, str],
    database: Any,
    bus: TestBus,
    seller: Headers,
    eventually: Eventually,
) -> None:
    app: FastAPI = create_app(database=database)
    async with running(app), http_client(app) as client:
        created = await client.post(
            "/api/tickets", json={"title": "Concert", "price": 20}, headers=seller
        )
        ticket_id = created.json()["id"]
        await bus.wait_for(TicketCreated, id=ticket_id)
        await app.state.runtime.relay.stop()  # the relay dies; the service still takes writes
        edited = await client.put(
            f"/api/tickets/{ticket_id}", json={"title": "Concert", "price": 25}, headers=seller
        )
        assert edited.status_code == 200
        assert not await outbox_empty(database, ObjectId(ticket_id))

    assert bus.published(TicketUpdated) == []
    async with running(create_app(database=database)):
        event = await bus.wait_for(TicketUpdated, id=ticket_id)
        await eventually(lambda: outbox_empty(database, ObjectId(ticket_id)))

    assert (event.version, event.price) == (1, Decimal("25.00"))
    assert await stream_message_count(bus) == 2


async def test_a_relay_that_died_after_publishing_does_not_publish_the_event_twice(
    service_env: dict[str, str], database: Any, bus: TestBus, eventually: Eventually
) -> None:
    ticket = await service.create_ticket(
        database, OUTBOX, title="Concert", price=Decimal("20.00"), user_id="u1"
    )
    # The relay published the pending event and died before removing it from the outbox.
    pending = Envelope.model_validate(ticket["outbox"][0])
    assert await bus.publish_envelope(pending) is True

    async with running(create_app(database=database)):
        await eventually(lambda: outbox_empty(database, ticket["_id"]))

    assert await stream_message_count(bus) == 1
    assert [envelope.id for envelope in bus.recorder.envelopes(TicketCreated)] == [pending.id]


async def test_a_change_written_on_a_stale_version_is_refused(database: Any) -> None:
    ticket = await service.create_ticket(
        database, OUTBOX, title="Concert", price=Decimal("20.00"), user_id="u1"
    )
    fresh = await repository.find_ticket(database, ticket_id=ticket["_id"])
    assert fresh is not None
    assert await service.save_change(database, OUTBOX, fresh, {"title": "First"}) is not None

    assert await service.save_change(database, OUTBOX, fresh, {"title": "Second"}) is None
    stored = await repository.find_ticket(database, ticket_id=ticket["_id"])
    assert stored is not None and (stored["title"], stored["version"]) == ("First", 1)


async def test_a_reservation_read_before_its_cancellation_was_noted_does_not_lock(
    database: Any,
) -> None:
    # OrderCreated and OrderCancelled of one order handled at the same moment, the
    # cancellation's note landing between the reservation's read and its write.
    ticket = await service.create_ticket(
        database, OUTBOX, title="Concert", price=Decimal("20.00"), user_id="u1"
    )
    read_by_reservation = await repository.find_ticket(database, ticket_id=ticket["_id"])
    assert read_by_reservation is not None

    noted = await repository.remember_released_order(
        database, ticket_id=ticket["_id"], order_id="order-a"
    )
    reserved = await service.reserve_ticket(
        database, OUTBOX, read_by_reservation, order_id="order-a"
    )

    assert noted and reserved is None
    stored = await repository.find_ticket(database, ticket_id=ticket["_id"])
    assert stored is not None and (stored["order_id"], stored["version"]) == (None, 0)


async def test_a_cancellation_read_before_its_reservation_landed_is_told_to_release_it(
    database: Any,
) -> None:
    ticket = await service.create_ticket(
        database, OUTBOX, title="Concert", price=Decimal("20.00"), user_id="u1"
    )
    fresh = await repository.find_ticket(database, ticket_id=ticket["_id"])
    assert fresh is not None
    # The cancellation read the ticket unreserved; then the reservation landed.
    assert await service.reserve_ticket(database, OUTBOX, fresh, order_id="order-a") is not None

    noted = await repository.remember_released_order(
        database, ticket_id=ticket["_id"], order_id="order-a"
    )

    assert noted is False  # so the listener reads again and releases the ticket


async def test_concurrent_edits_each_bump_the_version_once(
    client: httpx.AsyncClient, seller: Headers, bus: TestBus
) -> None:
    created = await client.post(
        "/api/tickets", json={"title": "Concert", "price": 20}, headers=seller
    )
    ticket_id = created.json()["id"]

    responses = await asyncio.gather(
        *(
            client.put(
                f"/api/tickets/{ticket_id}", json={"title": "Concert", "price": p}, headers=seller
            )
            for p in range(21, 41)
        )
    )

    assert [response.status_code for response in responses] == [200] * 20
    assert sorted(response.json()["version"] for response in responses) == list(range(1, 21))
    await bus.wait_for(TicketUpdated, id=ticket_id, count=20)
    events = bus.published(TicketUpdated, id=ticket_id)
    assert [event.version for event in events] == list(range(1, 21))
    final = (await client.get(f"/api/tickets/{ticket_id}")).json()
    assert (final["version"], Decimal(str(final["price"]))) == (20, events[-1].price)


async def test_edits_racing_a_reservation_lose_no_change(
    client: httpx.AsyncClient,
    seller: Headers,
    bus: TestBus,
    order_created: Callable[..., Any],
) -> None:
    created = await client.post(
        "/api/tickets", json={"title": "Concert", "price": 20}, headers=seller
    )
    ticket_id = created.json()["id"]
    order = order_created(ticket_id)

    async def edit(price: int) -> httpx.Response:
        return await client.put(
            f"/api/tickets/{ticket_id}", json={"title": "Concert", "price": price}, headers=seller
        )

    edits = [asyncio.create_task(edit(price)) for price in range(21, 41)]
    # The reservation lands while the edits are in flight.
    answered, _ = await asyncio.wait(edits, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    assert answered, "no edit was answered within 10s"
    await bus.publish(order)
    responses = await asyncio.gather(*edits)
    await bus.wait_for(TicketUpdated, id=ticket_id, order_id=order.id)

    assert {response.status_code for response in responses} <= {200, 400}
    refused = [response.json() for response in responses if response.status_code == 400]
    reserved = {"errors": [{"message": "Cannot edit a reserved ticket"}]}
    assert all(body == reserved for body in refused)
    accepted = sum(response.status_code == 200 for response in responses)
    final = (await client.get(f"/api/tickets/{ticket_id}")).json()
    assert (final["orderId"], final["version"]) == (order.id, accepted + 1)
    await bus.wait_for(TicketUpdated, id=ticket_id, count=accepted + 1)
    versions = [event.version for event in bus.published(TicketUpdated, id=ticket_id)]
    assert versions == list(range(1, accepted + 2))
