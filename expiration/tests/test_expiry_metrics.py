"""expiration's /metrics: pending timers and the lateness of each expiry."""

from datetime import timedelta
from decimal import Decimal

import httpx
from bson import ObjectId
from common.events import OrderCreated, OrderExpired, TicketPriceRef
from common.types import ceil_to_millisecond, utc_now
from gittix_testing import TestBus
from gittix_testing.metrics import metric_samples


async def scrape(client: httpx.AsyncClient) -> dict[str, float]:
    return {
        sample.name: sample.value
        for sample in await metric_samples(client)
        if sample.name.startswith("gittix_expiry_") and "le" not in sample.labels
    }


def order_created(*, expires_in: float) -> OrderCreated:
    return OrderCreated(
        id=str(ObjectId()),
        version=0,
        status="created",
        user_id=str(ObjectId()),
        expires_at=ceil_to_millisecond(utc_now() + timedelta(seconds=expires_in)),
        ticket=TicketPriceRef(id=str(ObjectId()), price=Decimal("25.50")),
    )


async def test_a_fired_timer_is_counted_with_its_lateness_and_a_waiting_one_as_pending(
    client: httpx.AsyncClient, bus: TestBus
) -> None:
    before = await scrape(client)
    late = order_created(expires_in=-30)  # already 30 s overdue when it arrives
    waiting = order_created(expires_in=3600)

    await bus.publish(waiting)
    await bus.publish(late)
    await bus.wait_for(OrderExpired, order_id=late.id)

    after = await scrape(client)
    assert after["gittix_expiry_pending_timers"] == 1
    assert (
        after["gittix_expiry_lateness_seconds_count"]
        - before.get("gittix_expiry_lateness_seconds_count", 0)
        == 1
    )
    lateness = after["gittix_expiry_lateness_seconds_sum"] - before.get(
        "gittix_expiry_lateness_seconds_sum", 0
    )
    assert 30 <= lateness < 30 + 60
