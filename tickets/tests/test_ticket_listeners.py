"""Orders reserving, releasing and buying tickets through events: in order, out of order, twice,
unknown."""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from bson import ObjectId
from common.events import TicketUpdated
from gittix_testing import TestBus
from gittix_testing.waiting import wait_until

Sell = Callable[..., Awaitable[dict[str, Any]]]
Reserve = Callable[[], Awaitable[tuple[dict[str, Any], Any]]]
Headers = dict[str, str]
CREATED_DURABLE = "tickets-order-created-v1"
CANCELLED_DURABLE = "tickets-order-cancelled-v1"


async def show(client: httpx.AsyncClient, ticket_id: str) -> dict[str, Any]:
    return (await client.get(f"/api/tickets/{ticket_id}")).json()


@pytest.fixture
def reserve(sell: Sell, bus: TestBus, order_created: Callable[..., Any]) -> Reserve:
    """reserve(): a ticket put up for sale and an order holding it (OrderCreated published and
    the lock, version 1, announced); returns the ticket as first listed and the OrderCreated."""

    async def reserve() -> tuple[dict[str, Any], Any]:
        ticket = await sell()
        order = order_created(ticket["id"])
        await bus.publish(order)
        await bus.wait_for(TicketUpdated, id=ticket["id"], version=1)
        return ticket, order

    return reserve


async def test_order_created_reserves_the_ticket(
    client: httpx.AsyncClient, sell: Sell, bus: TestBus, order_created: Callable[..., Any]
) -> None:
    ticket = await sell()
    order = order_created(ticket["id"])

    await bus.publish(order)

    event = await bus.wait_for(TicketUpdated, id=ticket["id"])
    assert (event.version, event.order_id, event.title) == (1, order.id, "Concert")
    assert await show(client, ticket["id"]) == {**ticket, "orderId": order.id, "version": 1}
    assert (await client.get("/api/tickets")).json() == []


async def test_order_cancelled_releases_the_ticket_and_the_owner_can_edit_again(
    client: httpx.AsyncClient,
    reserve: Reserve,
    seller: Headers,
    bus: TestBus,
    order_cancelled: Callable[..., Any],
) -> None:
    ticket, order = await reserve()

    await bus.publish(order_cancelled(ticket["id"], order.id))

    event = await bus.wait_for(TicketUpdated, id=ticket["id"], version=2)
    assert event.order_id is None
    assert await show(client, ticket["id"]) == {**ticket, "version": 2}
    edited = await client.put(
        f"/api/tickets/{ticket['id']}", json={"title": "Concert", "price": 30}, headers=seller
    )
    assert (edited.status_code, edited.json()["version"]) == (200, 3)


async def test_a_duplicate_order_created_changes_nothing(
    client: httpx.AsyncClient, reserve: Reserve, bus: TestBus
) -> None:
    ticket, order = await reserve()

    # The same event again under a new message id, as a relay publishing twice would send it.
    await bus.publish(order)
    await bus.wait_consumer_idle(CREATED_DURABLE)

    assert (await show(client, ticket["id"]))["version"] == 1
    assert len(bus.published(TicketUpdated, id=ticket["id"])) == 1


async def test_a_duplicate_order_cancelled_changes_nothing(
    client: httpx.AsyncClient,
    sell: Sell,
    bus: TestBus,
    order_created: Callable[..., Any],
    order_cancelled: Callable[..., Any],
) -> None:
    ticket = await sell()
    first, second = order_created(ticket["id"]), order_created(ticket["id"])
    await bus.publish(first)
    await bus.publish(order_cancelled(ticket["id"], first.id))
    await bus.publish(second)
    # Version 3 (locked, released, locked), or 1 when the cancellation, on its own consumer,
    # came before the first order's creation, which then never locked the ticket.
    held = await bus.wait_for(TicketUpdated, id=ticket["id"], order_id=second.id)

    # A late copy of the first order's cancellation must not release the second order's lock.
    await bus.publish(order_cancelled(ticket["id"], first.id))
    await bus.wait_consumer_idle(CANCELLED_DURABLE)

    shown = await show(client, ticket["id"])
    assert (shown["orderId"], shown["version"]) == (second.id, held.version)


async def test_a_late_order_created_after_its_cancellation_does_not_lock_the_ticket(
    client: httpx.AsyncClient,
    sell: Sell,
    bus: TestBus,
    order_created: Callable[..., Any],
    order_cancelled: Callable[..., Any],
) -> None:
    ticket = await sell()
    order = order_created(ticket["id"])

    await bus.publish(order_cancelled(ticket["id"], order.id))
    await bus.wait_consumer_idle(CANCELLED_DURABLE)
    await bus.publish(order)
    await bus.wait_consumer_idle(CREATED_DURABLE)

    assert await show(client, ticket["id"]) == ticket
    assert bus.published(TicketUpdated) == []


async def test_a_redelivered_order_created_after_release_does_not_lock_the_ticket_again(
    client: httpx.AsyncClient,
    reserve: Reserve,
    bus: TestBus,
    order_cancelled: Callable[..., Any],
) -> None:
    # Locked first: the cancellation, on its own consumer, could otherwise come before the
    # creation, which would then never lock the ticket (no release, no version 2).
    ticket, order = await reserve()
    await bus.publish(order_cancelled(ticket["id"], order.id))
    await bus.wait_for(TicketUpdated, id=ticket["id"], version=2)

    await bus.publish(order)
    await bus.wait_consumer_idle(CREATED_DURABLE)

    assert await show(client, ticket["id"]) == {**ticket, "version": 2}


async def test_a_new_order_waits_for_the_previous_holders_cancellation(
    client: httpx.AsyncClient,
    sell: Sell,
    bus: TestBus,
    order_created: Callable[..., Any],
    order_cancelled: Callable[..., Any],
) -> None:
    ticket = await sell()
    first, second = order_created(ticket["id"]), order_created(ticket["id"])
    await bus.publish(first)
    await bus.wait_for(TicketUpdated, id=ticket["id"], version=1)

    # The second order arrives before the first one's cancellation: it is retried, not lost.
    await bus.publish(second)
    info = await bus.wait_redelivered(CREATED_DURABLE)
    assert info.num_redelivered >= 1
    assert (await show(client, ticket["id"]))["orderId"] == first.id
    await bus.publish(order_cancelled(ticket["id"], first.id))

    event = await bus.wait_for(TicketUpdated, id=ticket["id"], version=3)
    assert event.order_id == second.id
    released = bus.published(TicketUpdated, id=ticket["id"], version=2)
    assert [update.order_id for update in released] == [None]


async def test_order_cancelled_for_another_order_leaves_the_reservation(
    client: httpx.AsyncClient,
    reserve: Reserve,
    bus: TestBus,
    order_cancelled: Callable[..., Any],
) -> None:
    ticket, order = await reserve()

    await bus.publish(order_cancelled(ticket["id"], str(ObjectId())))
    await bus.wait_consumer_idle(CANCELLED_DURABLE)

    assert (await show(client, ticket["id"]))["orderId"] == order.id
    assert len(bus.published(TicketUpdated)) == 1


@pytest.fixture
def quick_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    # Report a wait after half a second instead of five minutes (read when the app starts).
    monkeypatch.setenv("LISTENER_WAIT_WARNING_SECONDS", "0.5")
    monkeypatch.setenv("LISTENER_RETRY_MAX_SECONDS", "0.1")
    monkeypatch.setenv("LISTENER_RETRY_BASE_SECONDS", "0.05")


async def test_order_created_for_an_unknown_ticket_waits_and_is_reported_never_dropped(
    quick_waits: None,
    client: httpx.AsyncClient,
    bus: TestBus,
    order_created: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    order = order_created(str(ObjectId()))

    with caplog.at_level(logging.WARNING, logger="common.messaging"):
        envelope = await bus.publish(order)
        await bus.wait_redelivered(CREATED_DURABLE)
        waiting = await wait_until(
            lambda: [r.getMessage() for r in caplog.records if "waiting long" in r.getMessage()],
            timeout=10,
            message="the wait was never reported",
        )

    assert f"ticket {order.ticket.id} is unknown" in waiting[0] and envelope.id in waiting[0]
    info = await bus.consumer_info(CREATED_DURABLE)
    assert info.num_ack_pending + info.num_pending == 1  # still there, still retried
    assert await bus.dead_letters() == []
    assert bus.published(TicketUpdated) == []


# --- a paid order sells its ticket ---------------------------------------------------------------

UPDATED_DURABLE = "tickets-order-updated-v1"


async def state_for_seller(client: httpx.AsyncClient, seller: Headers, ticket_id: str) -> str:
    mine = (await client.get("/api/tickets/mine", headers=seller)).json()
    return str(next(ticket["state"] for ticket in mine if ticket["id"] == ticket_id))


async def test_a_paid_order_sells_its_ticket_which_can_no_longer_be_edited(
    client: httpx.AsyncClient,
    reserve: Reserve,
    seller: Headers,
    bus: TestBus,
    order_updated: Callable[..., Any],
) -> None:
    ticket, order = await reserve()

    await bus.publish(order_updated(order.id, "awaiting_payment", version=1))
    await bus.wait_consumer_idle(UPDATED_DURABLE)
    assert await state_for_seller(client, seller, ticket["id"]) == "reserved"
    await bus.publish(order_updated(order.id, "completed", version=2))
    await bus.wait_consumer_idle(UPDATED_DURABLE)

    assert await state_for_seller(client, seller, ticket["id"]) == "sold"
    # Nothing TicketUpdated carries has changed: no new version, nothing announced.
    assert await show(client, ticket["id"]) == {**ticket, "orderId": order.id, "version": 1}
    assert len(bus.published(TicketUpdated, id=ticket["id"])) == 1
    edited = await client.put(
        f"/api/tickets/{ticket['id']}", json={"title": "Resold", "price": 99}, headers=seller
    )
    assert edited.status_code == 400


async def test_a_redelivered_completion_changes_nothing(
    client: httpx.AsyncClient,
    sell: Sell,
    seller: Headers,
    bus: TestBus,
    order_created: Callable[..., Any],
    order_updated: Callable[..., Any],
) -> None:
    ticket = await sell()
    order = order_created(ticket["id"])
    await bus.publish(order)
    await bus.publish(order_updated(order.id))
    await bus.wait_for(TicketUpdated, id=ticket["id"], version=1)
    await bus.wait_consumer_idle(UPDATED_DURABLE)
    sold = (await client.get("/api/tickets/mine", headers=seller)).json()

    # The same event again under a new message id, as a relay publishing twice would send it.
    await bus.publish(order_updated(order.id))
    await bus.wait_consumer_idle(UPDATED_DURABLE)

    assert (await client.get("/api/tickets/mine", headers=seller)).json() == sold
    assert [t["state"] for t in sold] == ["sold"]
    assert len(bus.published(TicketUpdated, id=ticket["id"])) == 1


async def test_a_completion_before_its_reservation_waits_for_it_and_is_not_lost(
    quick_waits: None,
    client: httpx.AsyncClient,
    sell: Sell,
    seller: Headers,
    bus: TestBus,
    order_created: Callable[..., Any],
    order_cancelled: Callable[..., Any],
    order_updated: Callable[..., Any],
) -> None:
    ticket = await sell()
    first, second = order_created(ticket["id"]), order_created(ticket["id"])
    await bus.publish(first)
    await bus.wait_for(TicketUpdated, id=ticket["id"], version=1)

    # The second order was paid for before tickets heard of it, and while the ticket is still
    # held by the first one: the first order's ticket must not be marked sold.
    await bus.publish(order_updated(second.id))
    await bus.publish(second)
    await bus.wait_redelivered(UPDATED_DURABLE)
    assert await state_for_seller(client, seller, ticket["id"]) == "reserved"
    assert (await show(client, ticket["id"]))["orderId"] == first.id

    await bus.publish(order_cancelled(ticket["id"], first.id))
    await bus.wait_for(TicketUpdated, id=ticket["id"], version=3, order_id=second.id)
    await bus.wait_consumer_idle(UPDATED_DURABLE)

    assert await state_for_seller(client, seller, ticket["id"]) == "sold"
    assert await bus.dead_letters() == []


async def test_a_sold_ticket_stays_sold_when_another_order_is_cancelled(
    client: httpx.AsyncClient,
    sell: Sell,
    seller: Headers,
    bus: TestBus,
    order_created: Callable[..., Any],
    order_cancelled: Callable[..., Any],
    order_updated: Callable[..., Any],
) -> None:
    ticket = await sell()
    order = order_created(ticket["id"])
    await bus.publish(order)
    await bus.publish(order_updated(order.id))
    await bus.wait_for(TicketUpdated, id=ticket["id"], version=1)
    await bus.wait_consumer_idle(UPDATED_DURABLE)

    await bus.publish(order_cancelled(ticket["id"], str(ObjectId())))
    await bus.wait_consumer_idle(CANCELLED_DURABLE)

    assert await state_for_seller(client, seller, ticket["id"]) == "sold"
    assert await show(client, ticket["id"]) == {**ticket, "orderId": order.id, "version": 1}
    assert len(bus.published(TicketUpdated, id=ticket["id"])) == 1
