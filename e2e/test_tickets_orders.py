"""Tickets and orders end to end: auth, tickets and orders as separate processes on the real bus,
driven through the HTTPS entry point exactly as `make up` serves it (on the shared system).

create -> reserve -> the ticket carries the orderId -> cancel -> the ticket unlocks and its owner
can edit it again -> someone else can reserve it; a ticket update reaches the orders replica; and
many buyers at once on one ticket. Where a step depends on another service hearing an event, the
test watches the system's own stream for that event (and for the listener to be done with it).
"""

import asyncio
import io
import uuid
from contextlib import AsyncExitStack
from decimal import Decimal
from typing import Any

import httpx
from common.dlq import run
from common.events import OrderCancelled, OrderCreated, TicketCreated, TicketUpdated
from devserver.harness import RunningSystem
from gittix_testing.bus import TestBus
from gittix_testing.waiting import wait_until

PASSWORD = "correct horse battery"
EVENTUAL = 30.0
CONCURRENT_BUYERS = 30
ALREADY_RESERVED = {"errors": [{"message": "Ticket is already reserved"}]}


async def heard(stream: TestBus, event: type[Any], *, service: str, **match: Any) -> Any:
    """Wait until the event is on the stream and `service`'s listener for it has handled it."""
    found = await stream.wait_for(event, timeout=EVENTUAL, **match)
    durable = f"{service}-" + event.subject.removeprefix("ticketing.").replace(".", "-")
    await stream.wait_consumer_idle(durable, timeout=EVENTUAL)
    return found


async def sign_up(http: httpx.AsyncClient) -> str:
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    response = await http.post("/api/users/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def sell(
    http: httpx.AsyncClient, stream: TestBus, title: str, price: float
) -> dict[str, Any]:
    """Put a ticket up for sale and wait until orders knows it (it learns of tickets by events)."""
    response = await http.post("/api/tickets", json={"title": title, "price": price})
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    await heard(stream, TicketCreated, service="orders", id=ticket["id"])
    return ticket


async def test_a_cancelled_reservation_unlocks_the_ticket_for_its_owner_and_other_buyers(
    system: RunningSystem, stream: TestBus
) -> None:
    async with (
        system.client() as seller,
        system.client() as buyer,
        system.client() as second_buyer,
    ):
        seller_id = await sign_up(seller)
        buyer_id = await sign_up(buyer)
        await sign_up(second_buyer)
        ticket = await sell(seller, stream, "Cup final", 45.5)
        assert (ticket["userId"], ticket["orderId"], ticket["version"]) == (seller_id, None, 0)

        reserved = await buyer.post("/api/orders", json={"ticketId": ticket["id"]})
        assert reserved.status_code == 201, reserved.text
        order = reserved.json()
        assert (order["status"], order["userId"], order["version"]) == ("created", buyer_id, 0)
        assert order["ticket"] == {"id": ticket["id"], "title": "Cup final", "price": 45.5}

        # The ticket carries the order once tickets has heard of it: off sale, not editable.
        await stream.wait_for(
            TicketUpdated, id=ticket["id"], order_id=order["id"], timeout=EVENTUAL
        )
        shown = (await seller.get(f"/api/tickets/{ticket['id']}")).json()
        assert (shown["orderId"], shown["version"]) == (order["id"], 1)
        listed = (await buyer.get("/api/tickets")).json()
        assert ticket["id"] not in {t["id"] for t in listed}
        refused = await seller.put(
            f"/api/tickets/{ticket['id']}", json={"title": "Cup final", "price": 60}
        )
        assert (refused.status_code, refused.json()) == (
            400,
            {"errors": [{"message": "Cannot edit a reserved ticket"}]},
        )
        taken = await second_buyer.post("/api/orders", json={"ticketId": ticket["id"]})
        assert (taken.status_code, taken.json()) == (400, ALREADY_RESERVED)
        assert (await second_buyer.get(f"/api/orders/{order['id']}")).status_code == 403

        cancelled = await buyer.delete(f"/api/orders/{order['id']}")
        assert cancelled.status_code == 204
        after = (await buyer.get(f"/api/orders/{order['id']}")).json()
        assert (after["status"], after["version"]) == ("cancelled", 1)
        await stream.wait_for(OrderCancelled, id=order["id"], timeout=EVENTUAL)

        # The ticket unlocks through tickets hearing OrderCancelled.
        await stream.wait_for(TicketUpdated, id=ticket["id"], version=2, timeout=EVENTUAL)
        unlocked = (await seller.get(f"/api/tickets/{ticket['id']}")).json()
        assert (unlocked["orderId"], unlocked["version"]) == (None, 2)
        assert ticket["id"] in {t["id"] for t in (await buyer.get("/api/tickets")).json()}
        edited = await seller.put(
            f"/api/tickets/{ticket['id']}", json={"title": "Cup final (row A)", "price": 60}
        )
        assert edited.status_code == 200, edited.text
        assert (edited.json()["price"], edited.json()["version"]) == (60, 3)

        second = await second_buyer.post("/api/orders", json={"ticketId": ticket["id"]})
        assert second.status_code == 201, second.text
        await stream.wait_for(
            TicketUpdated, id=ticket["id"], order_id=second.json()["id"], timeout=EVENTUAL
        )
        my_orders = (await buyer.get("/api/orders")).json()
        assert [o["id"] for o in my_orders] == [order["id"]]


async def test_a_ticket_update_reaches_the_orders_replica(
    system: RunningSystem, stream: TestBus
) -> None:
    async with system.client() as seller, system.client() as buyer:
        await sign_up(seller)
        await sign_up(buyer)
        ticket = await sell(seller, stream, "Opera night", 80)

        edited = await seller.put(
            f"/api/tickets/{ticket['id']}", json={"title": "Opera night (stalls)", "price": 95.25}
        )
        assert edited.status_code == 200, edited.text
        update = await heard(stream, TicketUpdated, service="orders", id=ticket["id"], version=1)
        assert update.price == Decimal("95.25")

        reserved = await buyer.post("/api/orders", json={"ticketId": ticket["id"]})

        assert reserved.status_code == 201, reserved.text
        assert reserved.json()["ticket"] == {
            "id": ticket["id"],
            "title": "Opera night (stalls)",
            "price": 95.25,
        }
        created = await stream.wait_for(OrderCreated, id=reserved.json()["id"], timeout=EVENTUAL)
        assert created.ticket.price == Decimal("95.25")


async def test_many_buyers_at_once_through_the_entry_point_get_exactly_one_order(
    system: RunningSystem, stream: TestBus
) -> None:
    async with AsyncExitStack() as stack:
        seller = await stack.enter_async_context(system.client())
        buyers = [
            await stack.enter_async_context(system.client()) for _ in range(CONCURRENT_BUYERS)
        ]
        await sign_up(seller)
        for buyer in buyers:
            await sign_up(buyer)
        ticket = await sell(seller, stream, "Last seat", 120)

        responses = await asyncio.gather(
            *(b.post("/api/orders", json={"ticketId": ticket["id"]}) for b in buyers)
        )

        statuses = [response.status_code for response in responses]
        assert statuses.count(201) == 1, statuses
        assert statuses.count(400) == CONCURRENT_BUYERS - 1, statuses
        assert all(r.json() == ALREADY_RESERVED for r in responses if r.status_code == 400)
        winner = next(r.json() for r in responses if r.status_code == 201)
        await stream.wait_for(
            TicketUpdated, id=ticket["id"], order_id=winner["id"], timeout=EVENTUAL
        )
        orders_for_ticket = [
            envelope
            for envelope in stream.published(OrderCreated)
            if envelope.ticket.id == ticket["id"]
        ]
        assert [o.id for o in orders_for_ticket] == [winner["id"]]


async def test_a_malformed_event_is_dead_lettered_under_make_up_and_the_dlq_command_sees_it(
    system: RunningSystem, stream: TestBus
) -> None:
    # Published with the operator's rights; orders runs as its own NATS user and must be allowed
    # to write its dead letters, as under `make up`.
    marker = uuid.uuid4().hex
    payload = f'{{"id": "{marker}", "type": "TicketCreated", "data": 1}}'.encode()
    await stream.publish_raw(TicketCreated.subject, payload, msg_id=marker)

    async def dead_lettered() -> Any:
        found = [s for s in await stream.dead_letters() if s.record.event_id == marker]
        return found[0] if found else None

    stored = await wait_until(dead_lettered, timeout=EVENTUAL, message="never dead-lettered")
    assert (stored.record.consumer, stored.record.reason) == (
        "orders-ticket-created-v1",
        "unparseable",
    )
    assert stored.record.payload == payload.decode()

    async with httpx.AsyncClient() as plain:
        consumers = (await plain.get(f"{system.system.service_url('orders')}/consumers")).json()
        ready = await plain.get(f"{system.system.service_url('orders')}/readyz")
    [created] = [c for c in consumers["consumers"] if c["consumer"] == "orders-ticket-created-v1"]
    assert created["counters"]["unparseable"] >= 1 and ready.status_code == 200

    out = io.StringIO()
    assert await run(["list"], nats_url=system.nats_url, out=out) == 0
    assert marker in out.getvalue()
    assert await run(["discard", str(stored.sequence)], nats_url=system.nats_url, out=out) == 0
    assert await dead_lettered() is None
