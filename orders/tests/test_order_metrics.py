"""orders' /metrics after known traffic: each counter moved by exactly what was done."""

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from bson import ObjectId
from common.events import OrderCreated, TicketCreated
from gittix_testing import TestBus
from gittix_testing.metrics import metric_samples

TicketForSale = Callable[..., Awaitable[TicketCreated]]
PlaceOrder = Callable[..., Awaitable[dict[str, Any]]]
Headers = dict[str, str]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for sample in await metric_samples(client)
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_requests_by_route_events_and_the_outbox(
    client: httpx.AsyncClient,
    buyer: Headers,
    ticket_for_sale: TicketForSale,
    place_order: PlaceOrder,
    bus: TestBus,
    eventually: Callable[..., Awaitable[None]],
) -> None:
    before = await scrape(client)
    ticket = await ticket_for_sale()
    order = await place_order(ticket.id)
    await bus.wait_for(OrderCreated, id=order["id"])

    async def relay_counted() -> bool:
        published = ("gittix_events_published_total", {"type": "OrderCreated", "outcome": "stored"})
        samples = await scrape(client)
        counted = value(samples, published[0], **published[1]) > value(
            before, published[0], **published[1]
        )
        return counted and value(samples, "gittix_outbox_pending_entries", collection="orders") == 0

    # The relay counts a publish once the stream's ack is back, which may be after it arrived,
    # and takes the entry out of the order's outbox only after that (one more database write).
    await eventually(relay_counted, timeout=10)
    missing = str(ObjectId())
    assert (await client.get(f"/api/orders/{missing}", headers=buyer)).status_code == 404
    assert (await client.get(f"/api/orders/{order['id']}", headers=buyer)).status_code == 200

    after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert (
        moved("gittix_http_requests_total", method="POST", route="/api/orders", status="201") == 1
    )
    route = "/api/orders/{order_id}"
    assert moved("gittix_http_requests_total", method="GET", route=route, status="404") == 1
    assert moved("gittix_http_requests_total", method="GET", route=route, status="200") == 1
    assert moved("gittix_http_request_duration_seconds_count", method="GET", route=route) == 2
    assert moved("gittix_events_published_total", type="OrderCreated", outcome="stored") == 1
    handled = {"consumer": "orders-ticket-created-v1", "type": "TicketCreated"}
    assert moved("gittix_events_handled_total", outcome="acked", **handled) == 1
    assert moved("gittix_event_handling_duration_seconds_count", consumer=handled["consumer"]) == 1
    # Published and pulled: nothing left in the outbox, and the consumer has nothing pending.
    assert value(after, "gittix_outbox_pending_entries", collection="orders") == 0
    assert value(after, "gittix_outbox_oldest_pending_age_seconds", collection="orders") == 0
    assert value(after, "gittix_consumer_pending_messages", consumer=handled["consumer"]) == 0
    assert value(after, "gittix_ready", check="listeners") == 1
    # Bounded labels: no order or ticket id appears in any label.
    labels = {label for key in after for _, label in key[1]}
    assert not any(order["id"] in label or ticket.id in label for label in labels)
    assert not any(missing in label for label in labels)


async def test_an_unpublished_outbox_entry_shows_as_backlog_with_its_age(
    client: httpx.AsyncClient, app: Any
) -> None:
    # An entry as a crash leaves it: written, never published (the relay is not told).
    entry = {
        "id": "e" * 32,
        "type": "OrderCreated",
        "schema_version": 1,
        "occurred_at": "2020-01-01T00:00:00.000Z",
        "data": {},
    }
    await app.state.db["orders"].insert_one({"_id": ObjectId(), "outbox": [entry]})

    samples = await scrape(client)

    assert value(samples, "gittix_outbox_pending_entries", collection="orders") == 1
    assert value(samples, "gittix_outbox_oldest_pending_age_seconds", collection="orders") > 3600
