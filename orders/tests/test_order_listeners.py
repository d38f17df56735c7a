"""What orders hears: the tickets replica (in order, out of order, twice, unknown), expiry and
charge outcomes. Every order change bumps the version by one and is announced."""

import io
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from bson import ObjectId
from common.deadletter import DeadLetter, publish_dead_letter
from common.dlq import run
from common.events import (
    ChargeCreated,
    ChargeDispute,
    ChargeUpdated,
    ChargeUpdatedV2,
    Envelope,
    OrderCancelled,
    OrderCreated,
    OrderExpired,
    OrderUpdated,
    TicketCreated,
    TicketUpdated,
)
from conftest import order_ticket
from gittix_testing import TestBus
from gittix_testing.waiting import wait_until

TicketForSale = Callable[..., Awaitable[TicketCreated]]
PlaceOrder = Callable[..., Awaitable[dict[str, Any]]]
Settle = Callable[..., Awaitable[None]]
Headers = dict[str, str]
Order = dict[str, Any]


async def show(client: httpx.AsyncClient, headers: Headers, order_id: str) -> dict[str, Any]:
    return (await client.get(f"/api/orders/{order_id}", headers=headers)).json()


async def status_and_version(
    client: httpx.AsyncClient, headers: Headers, order_id: str
) -> tuple[str, int]:
    shown = await show(client, headers, order_id)
    return shown["status"], shown["version"]


@pytest.fixture
async def order(ticket_for_sale: TicketForSale, place_order: PlaceOrder) -> Order:
    """The buyer's order for a ticket on sale, as the API shows it (created, version 0)."""
    return await place_order((await ticket_for_sale()).id)


# --- the tickets replica -------------------------------------------------------------------------


async def test_ticket_updates_in_order_reach_the_replica(
    client: httpx.AsyncClient,
    buyer: Headers,
    ticket_for_sale: TicketForSale,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    ticket = await ticket_for_sale(price="10")
    await bus.publish(events.ticket_updated(ticket.id, 1, price="11"))
    await bus.publish(events.ticket_updated(ticket.id, 2, title="Renamed", price="12"))
    await settle(TicketUpdated)

    response = await order_ticket(client, buyer, ticket.id)

    assert response.json()["ticket"] == {"id": ticket.id, "title": "Renamed", "price": 12}


async def test_a_ticket_update_that_is_ahead_waits_for_its_predecessor(
    client: httpx.AsyncClient,
    buyer: Headers,
    ticket_for_sale: TicketForSale,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    ticket = await ticket_for_sale(price="10")

    await bus.publish(events.ticket_updated(ticket.id, 2, title="Second", price="12"))
    await bus.publish(events.ticket_updated(ticket.id, 1, title="First", price="11"))
    await settle(TicketUpdated)

    info = await bus.consumer_info("orders-ticket-updated-v1")
    # Two events, the one that was ahead delivered again at least once: more than once when the
    # first one has not been handled yet when its nak delay is over (a busy machine).
    assert info.delivered.consumer_seq >= 3
    response = await order_ticket(client, buyer, ticket.id)
    assert response.json()["ticket"] == {"id": ticket.id, "title": "Second", "price": 12}


async def test_old_and_duplicate_ticket_events_are_dropped(
    client: httpx.AsyncClient,
    buyer: Headers,
    ticket_for_sale: TicketForSale,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    ticket = await ticket_for_sale(title="Concert", price="10")
    await bus.publish(events.ticket_updated(ticket.id, 1, title="New", price="11"))
    await settle(TicketUpdated)

    await bus.publish(events.ticket_updated(ticket.id, 1, title="New", price="11"))
    await bus.publish(events.ticket_updated(ticket.id, 1, title="Stale copy", price="99"))
    await bus.publish(events.ticket_created(ticket.id, title="Created again", price="1"))
    await settle(TicketUpdated)
    await settle(TicketCreated)

    response = await order_ticket(client, buyer, ticket.id)
    assert response.json()["ticket"] == {"id": ticket.id, "title": "New", "price": 11}


async def test_an_update_for_an_unknown_ticket_is_applied_once_the_ticket_arrives(
    client: httpx.AsyncClient,
    buyer: Headers,
    app: Any,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    ticket_id = str(ObjectId())
    await bus.publish(events.ticket_updated(ticket_id, 1, title="Updated", price="30"))
    assert (await order_ticket(client, buyer, ticket_id)).status_code == 404

    await bus.publish(events.ticket_created(ticket_id, title="Created", price="20"))
    await settle(TicketCreated)
    await settle(TicketUpdated)

    response = await order_ticket(client, buyer, ticket_id)
    assert response.json()["ticket"] == {"id": ticket_id, "title": "Updated", "price": 30}


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # Redeliver every few tens of milliseconds (read when the app starts), so that many times
    # the ten deliveries after which listeners used to give up pass in well under a second.
    monkeypatch.setenv("LISTENER_RETRY_BASE_SECONDS", "0.01")
    monkeypatch.setenv("LISTENER_RETRY_MAX_SECONDS", "0.03")


async def test_an_update_long_ahead_of_its_ticket_is_applied_when_the_ticket_finally_comes(
    quick_retries: None,
    client: httpx.AsyncClient,
    buyer: Headers,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    ticket_id = str(ObjectId())
    await bus.publish(events.ticket_updated(ticket_id, 1, title="Edited", price="77"))

    async def waits() -> bool:
        consumers = (await client.get("/consumers")).json()["consumers"]
        [updated] = [c for c in consumers if c["consumer"] == "orders-ticket-updated-v1"]
        return bool(updated["counters"]["waiting"] >= 40)

    # Forty redeliveries: four times the old give-up point (10 deliveries, ~26 s by default).
    await wait_until(waits, timeout=20, message="the update was not redelivered 40 times")
    assert (await order_ticket(client, buyer, ticket_id)).status_code == 404

    await bus.publish(events.ticket_created(ticket_id, title="Original", price="10"))
    await settle(TicketCreated)
    await settle(TicketUpdated)

    response = await order_ticket(client, buyer, ticket_id)
    assert response.json()["ticket"] == {"id": ticket_id, "title": "Edited", "price": 77}
    assert await bus.dead_letters() == []


def dead_letter_of(event: TicketUpdated, *, sequence: int) -> DeadLetter:
    """A TicketUpdated as orders' consumer would have dead-lettered it (stream sequence given)."""
    envelope = Envelope.wrap(event)
    return DeadLetter(
        subject=envelope.subject,
        headers={"Nats-Msg-Id": envelope.id},
        payload=envelope.to_bytes().decode(),
        service="orders",
        consumer="orders-ticket-updated-v1",
        stream="TICKETING",
        stream_sequence=sequence,
        delivered=10,
        failures=10,
        reason="failed",
        last_error="OperationFailure: not primary",
        dead_lettered_at=datetime.now(UTC),
        event_type=envelope.type,
        event_id=envelope.id,
    )


async def test_replaying_a_dead_letter_twice_leaves_the_replica_at_its_latest_version(
    client: httpx.AsyncClient,
    buyer: Headers,
    ticket_for_sale: TicketForSale,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    ticket = await ticket_for_sale(title="Concert", price="10")
    lost_update = events.ticket_updated(ticket.id, 1, title="Edited", price="77")
    # The same event dead-lettered twice (say, replayed once already and failed again).
    for sequence in (101, 102):
        await publish_dead_letter(bus.js, dead_letter_of(lost_update, sequence=sequence))
    first, second = await bus.dead_letters()

    assert await run(["replay", str(first.sequence)], nats_url=bus.url, out=io.StringIO()) == 0
    await settle(TicketUpdated)
    await bus.publish(events.ticket_updated(ticket.id, 2, title="Edited again", price="80"))
    await settle(TicketUpdated)
    assert await run(["replay", str(second.sequence)], nats_url=bus.url, out=io.StringIO()) == 0
    await settle(TicketUpdated)

    response = await order_ticket(client, buyer, ticket.id)
    assert response.json()["ticket"] == {"id": ticket.id, "title": "Edited again", "price": 80}
    assert await bus.dead_letters() == []


async def test_the_replica_orderid_does_not_lock_the_ticket(
    client: httpx.AsyncClient,
    buyer: Headers,
    other_buyer: Headers,
    ticket_for_sale: TicketForSale,
    place_order: PlaceOrder,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    # tickets' echo of a cancelled order (orderId still set) arrives after the cancellation:
    # orders' own records, not that lagging copy, decide whether the ticket is free.
    ticket = await ticket_for_sale()
    first = await place_order(ticket.id)
    assert (await client.delete(f"/api/orders/{first['id']}", headers=buyer)).status_code == 204
    await bus.publish(events.ticket_updated(ticket.id, 1, order_id=first["id"]))
    await settle(TicketUpdated)

    response = await order_ticket(client, other_buyer, ticket.id)

    assert response.status_code == 201


# --- expiry --------------------------------------------------------------------------------------


async def test_an_expired_order_is_cancelled_and_announced(
    client: httpx.AsyncClient,
    buyer: Headers,
    other_buyer: Headers,
    order: Order,
    bus: TestBus,
    events: Any,
) -> None:
    ticket_id = order["ticket"]["id"]

    await bus.publish(events.order_expired(order["id"]))

    event = await bus.wait_for(OrderCancelled, id=order["id"])
    assert (event.version, event.ticket.id) == (1, ticket_id)
    assert (await show(client, buyer, order["id"]))["status"] == "cancelled"
    assert (await order_ticket(client, other_buyer, ticket_id)).status_code == 201


async def test_expiry_of_an_order_awaiting_payment_cancels_it(
    client: httpx.AsyncClient,
    buyer: Headers,
    order: Order,
    bus: TestBus,
    events: Any,
) -> None:
    await bus.publish(events.charge_created(order["id"]))
    await bus.wait_for(OrderUpdated, id=order["id"])

    await bus.publish(events.order_expired(order["id"]))

    event = await bus.wait_for(OrderCancelled, id=order["id"])
    assert event.version == 2


async def test_expiry_of_a_completed_order_changes_nothing(
    client: httpx.AsyncClient,
    buyer: Headers,
    order: Order,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    await bus.publish(events.charge_updated(order["id"], "completed"))
    await bus.wait_for(OrderUpdated, id=order["id"], status="completed")

    await bus.publish(events.order_expired(order["id"]))
    await settle(OrderExpired)

    assert await status_and_version(client, buyer, order["id"]) == ("completed", 1)
    assert bus.published(OrderCancelled) == []


async def test_a_repeated_expiry_is_announced_once(
    client: httpx.AsyncClient,
    buyer: Headers,
    order: Order,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    await bus.publish(events.order_expired(order["id"]))
    await bus.publish(events.order_expired(order["id"]))
    await settle(OrderExpired)

    await bus.wait_for(OrderCancelled, id=order["id"])
    assert len(bus.published(OrderCancelled)) == 1
    assert (await show(client, buyer, order["id"]))["version"] == 1


async def test_expiry_of_an_unknown_order_is_dropped_with_a_log_line(
    app: Any, bus: TestBus, events: Any, settle: Settle, caplog: pytest.LogCaptureFixture
) -> None:
    order_id = str(ObjectId())

    with caplog.at_level(logging.WARNING, logger="orders.listeners"):
        await bus.publish(events.order_expired(order_id))
        await settle(OrderExpired)

    assert any(
        "dropped" in record.getMessage() and order_id in record.getMessage()
        for record in caplog.records
    )
    assert bus.published(OrderCancelled) == []


# --- charges -------------------------------------------------------------------------------------


async def test_a_paid_order_moves_through_awaiting_payment_to_completed(
    client: httpx.AsyncClient,
    buyer: Headers,
    order: Order,
    bus: TestBus,
    events: Any,
) -> None:
    await bus.publish(events.charge_created(order["id"]))
    awaiting = await bus.wait_for(OrderUpdated, id=order["id"], version=1)
    assert (await show(client, buyer, order["id"]))["status"] == "awaiting_payment"
    await bus.publish(events.charge_updated(order["id"], "completed"))
    completed = await bus.wait_for(OrderUpdated, id=order["id"], version=2)

    assert (awaiting.status, completed.status) == ("awaiting_payment", "completed")
    assert await status_and_version(client, buyer, order["id"]) == ("completed", 2)
    await bus.wait_for(OrderCreated, id=order["id"])
    versions = [event.version for event in bus.published(OrderCreated)] + [
        event.version for event in bus.published(OrderUpdated)
    ]
    assert versions == [0, 1, 2]


async def test_a_completed_charge_before_its_charge_created_still_completes_the_order(
    client: httpx.AsyncClient,
    buyer: Headers,
    order: Order,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    await bus.publish(events.charge_updated(order["id"], "completed"))
    await bus.wait_for(OrderUpdated, id=order["id"], status="completed")
    await bus.publish(events.charge_created(order["id"]))
    await settle(ChargeCreated)

    assert await status_and_version(client, buyer, order["id"]) == ("completed", 1)
    assert len(bus.published(OrderUpdated)) == 1


async def test_duplicate_charge_events_change_nothing(
    client: httpx.AsyncClient,
    buyer: Headers,
    order: Order,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    created = events.charge_created(order["id"])
    completed = events.charge_updated(order["id"], "completed", charge_id=created.id)

    # ChargeCreated first, handled: on its own consumer it could otherwise come after the
    # completion, which then completes the order alone (version 1, one OrderUpdated).
    for event in (created, created):
        await bus.publish(event)
    await settle(ChargeCreated)
    for event in (completed, completed):
        await bus.publish(event)
    await settle(ChargeUpdated)

    assert await status_and_version(client, buyer, order["id"]) == ("completed", 2)
    assert len(bus.published(OrderUpdated)) == 2


async def test_a_failed_charge_cancels_the_order(
    client: httpx.AsyncClient,
    buyer: Headers,
    other_buyer: Headers,
    order: Order,
    bus: TestBus,
    events: Any,
) -> None:
    ticket_id = order["ticket"]["id"]
    await bus.publish(events.charge_created(order["id"]))
    # Awaiting payment first: on its own consumer the failure could otherwise come before
    # ChargeCreated and cancel the order at version 1.
    await bus.wait_for(OrderUpdated, id=order["id"], version=1)

    await bus.publish(events.charge_updated(order["id"], "failed"))

    cancelled = await bus.wait_for(OrderCancelled, id=order["id"])
    assert cancelled.version == 2
    assert (await show(client, buyer, order["id"]))["status"] == "cancelled"
    assert (await order_ticket(client, other_buyer, ticket_id)).status_code == 201


async def test_a_failed_charge_never_cancels_a_completed_order(
    client: httpx.AsyncClient,
    buyer: Headers,
    order: Order,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    await bus.publish(events.charge_updated(order["id"], "completed"))
    await bus.wait_for(OrderUpdated, id=order["id"], status="completed")

    await bus.publish(events.charge_updated(order["id"], "failed"))
    await settle(ChargeUpdated)

    assert (await show(client, buyer, order["id"]))["status"] == "completed"
    assert bus.published(OrderCancelled) == []


async def test_charges_for_a_cancelled_order_change_nothing(
    client: httpx.AsyncClient,
    buyer: Headers,
    order: Order,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    assert (await client.delete(f"/api/orders/{order['id']}", headers=buyer)).status_code == 204

    # The buyer paid in the same instant: payments refunds it; the order stays cancelled.
    charge = events.charge_created(order["id"])
    await bus.publish(charge)
    await bus.publish(events.charge_updated(order["id"], "completed", charge_id=charge.id))
    await bus.publish(
        events.charge_updated(
            order["id"], "completed", charge_id=charge.id, version=2, refund_id="re_1"
        )
    )
    await settle(ChargeCreated)
    await settle(ChargeUpdated)

    assert await status_and_version(client, buyer, order["id"]) == ("cancelled", 1)
    assert bus.published(OrderUpdated) == []


async def test_a_refund_changes_nothing_on_an_open_order(
    client: httpx.AsyncClient,
    buyer: Headers,
    order: Order,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    await bus.publish(events.charge_updated(order["id"], "completed", refund_id="re_1"))
    await settle(ChargeUpdated)

    assert await status_and_version(client, buyer, order["id"]) == ("created", 0)


async def test_charge_events_for_an_unknown_order_are_dropped(
    app: Any, bus: TestBus, events: Any, settle: Settle, caplog: pytest.LogCaptureFixture
) -> None:
    order_id = str(ObjectId())

    with caplog.at_level(logging.WARNING, logger="orders.listeners"):
        await bus.publish(events.charge_created(order_id))
        await bus.publish(events.charge_updated(order_id, "failed"))
        await settle(ChargeCreated)
        await settle(ChargeUpdated)

    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 2 and all(order_id in message for message in dropped)
    assert bus.published(OrderUpdated) == [] and bus.published(OrderCancelled) == []


async def test_charge_updated_v2_with_a_dispute_is_handled_as_v1(
    client: httpx.AsyncClient,
    buyer: Headers,
    order: Order,
    bus: TestBus,
    events: Any,
    settle: Settle,
) -> None:
    created = events.charge_created(order["id"])
    await bus.publish(created)
    v1 = events.charge_updated(order["id"], "completed", charge_id=created.id)
    disputed = ChargeUpdatedV2(
        **v1.model_dump(exclude={"version"}),
        version=2,
        dispute=ChargeDispute(id="dp_1", status="needs_response", reason="fraudulent", amount=2050),
    )

    await bus.publish(disputed)  # only v2 arrives (the v1 completion is not needed first)
    await settle(ChargeUpdatedV2)

    shown = await show(client, buyer, order["id"])
    assert shown["status"] == "completed"
    # The dispute itself changes no order: a second one is acked without a change.
    await bus.publish(disputed)
    await settle(ChargeUpdatedV2)
    assert len(bus.published(OrderUpdated, id=order["id"], status="completed")) == 1
