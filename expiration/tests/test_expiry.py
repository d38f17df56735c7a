"""Expiry timers: OrderExpired at expiresAt, dropped on cancellation or completion, never twice."""

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from bson import ObjectId
from common.events import (
    Envelope,
    OrderCancelled,
    OrderCreated,
    OrderExpired,
    OrderUpdated,
    TicketPriceRef,
    TicketRef,
)
from common.outbox import Outbox
from common.types import ceil_to_millisecond, utc_now
from expiration.contract import CONTRACT
from fastapi import FastAPI
from gittix_testing import TestBus, running

from expiration import repository, service

# Time for the events that should stop or record a timer to be handled before it falls due, with
# room for a loaded machine (two events on two consumers, or a start and a stop of the service:
# on a busy 2-core machine a step can take over a second); timers are otherwise fired within
# milliseconds of their due time. Each test using it lasts about this long.
MARGIN = 5.0


def order_created(order_id: str | None = None, *, expires_in: float) -> OrderCreated:
    return OrderCreated(
        id=order_id or str(ObjectId()),
        version=0,
        status="created",
        user_id=str(ObjectId()),
        # As orders makes it: on a whole millisecond, so the event carries exactly this instant.
        expires_at=ceil_to_millisecond(utc_in(expires_in)),
        ticket=TicketPriceRef(id=str(ObjectId()), price=Decimal("25.50")),
    )


def utc_in(seconds: float) -> datetime:
    return utc_now() + timedelta(seconds=seconds)


def order_cancelled(order_id: str, version: int = 1) -> OrderCancelled:
    return OrderCancelled(id=order_id, version=version, ticket=TicketRef(id=str(ObjectId())))


async def assert_never_expires(bus: TestBus, *order_ids: str, after: float = 1.0) -> None:
    """No OrderExpired for these orders, shown by a later-due sentinel order expiring first.

    Timers fire in due order, so once the sentinel's expiry is out, theirs would be too.
    """
    sentinel = order_created(expires_in=after)
    await bus.publish(sentinel)
    await bus.wait_for(OrderExpired, order_id=sentinel.id)
    for order_id in order_ids:
        assert bus.published(OrderExpired, order_id=order_id) == []


async def test_order_expires_at_its_expires_at(app: FastAPI, bus: TestBus) -> None:
    created = order_created(expires_in=0.3)

    await bus.publish(created)

    expired = await bus.wait_for(OrderExpired, order_id=created.id)
    envelope = bus.recorder.envelopes(OrderExpired)[0]
    assert expired == OrderExpired(order_id=created.id)
    assert envelope.occurred_at >= created.expires_at  # never early


async def test_an_expires_at_finer_than_a_millisecond_is_not_cut_down_to_an_earlier_expiry(
    app: FastAPI, bus: TestBus
) -> None:
    # Another producer may send microseconds; storage keeps milliseconds.
    expires_at = ceil_to_millisecond(utc_in(0.3)) + timedelta(microseconds=999)
    envelope = Envelope.wrap(order_created(expires_in=0.3))
    raw = envelope.model_dump(mode="json")
    raw["data"]["expiresAt"] = expires_at.isoformat().replace("+00:00", "Z")
    await bus.publish_raw(OrderCreated.subject, json.dumps(raw).encode(), msg_id=envelope.id)

    await bus.wait_for(OrderExpired, order_id=envelope.data["id"])
    expired = bus.recorder.envelopes(OrderExpired)[0]
    assert expired.occurred_at >= expires_at  # never early, even by a fraction of a millisecond


async def test_a_timer_is_stored_rounded_up_to_the_millisecond(database: Any) -> None:
    on_a_millisecond = ceil_to_millisecond(utc_in(60))
    await repository.schedule(
        database, order_id="o1", due_at=on_a_millisecond + timedelta(microseconds=1)
    )
    await repository.schedule(database, order_id="o2", due_at=on_a_millisecond)

    stored = {doc["_id"]: doc["due_at"] async for doc in database[repository.EXPIRATIONS].find()}
    as_utc = {order_id: due.replace(tzinfo=UTC) for order_id, due in stored.items()}
    assert as_utc == {
        "o1": on_a_millisecond + timedelta(milliseconds=1),
        "o2": on_a_millisecond,
    }


async def test_order_already_past_due_expires_right_away(app: FastAPI, bus: TestBus) -> None:
    created = order_created(expires_in=-60)

    await bus.publish(created)

    await bus.wait_for(OrderExpired, order_id=created.id)


async def test_cancelled_order_does_not_expire(app: FastAPI, bus: TestBus) -> None:
    created = order_created(expires_in=MARGIN)
    await bus.publish(created)
    await bus.publish(order_cancelled(created.id))

    await assert_never_expires(bus, created.id, after=MARGIN + 0.5)


async def test_completed_order_does_not_expire(app: FastAPI, bus: TestBus) -> None:
    created = order_created(expires_in=MARGIN)
    await bus.publish(created)
    await bus.publish(OrderUpdated(id=created.id, version=1, status="awaiting_payment"))
    await bus.publish(OrderUpdated(id=created.id, version=2, status="completed"))

    await assert_never_expires(bus, created.id, after=MARGIN + 0.5)


async def test_order_awaiting_payment_still_expires(app: FastAPI, bus: TestBus) -> None:
    created = order_created(expires_in=0.5)
    await bus.publish(created)
    await bus.publish(OrderUpdated(id=created.id, version=1, status="awaiting_payment"))

    await bus.wait_for(OrderExpired, order_id=created.id)


async def test_duplicate_order_created_expires_once(app: FastAPI, bus: TestBus) -> None:
    created = order_created(expires_in=0.3)
    await bus.publish(created)
    await bus.publish(created)  # redelivered by the relay: a new envelope, same order

    await bus.wait_for(OrderExpired, order_id=created.id)
    await assert_never_expires(bus, after=0.5)
    assert len(bus.published(OrderExpired, order_id=created.id)) == 1


async def test_cancellation_arriving_before_creation_prevents_expiry(
    app: FastAPI, bus: TestBus
) -> None:
    order_id = str(ObjectId())
    await bus.publish(order_cancelled(order_id))
    await bus.wait_consumer_idle("expiration-order-cancelled-v1")
    await bus.publish(order_created(order_id, expires_in=0.2))

    await assert_never_expires(bus, order_id, after=0.8)


async def test_late_duplicate_creation_does_not_bring_a_dropped_timer_back(
    app: FastAPI, bus: TestBus
) -> None:
    created = order_created(expires_in=MARGIN)
    await bus.publish(created)
    await bus.wait_consumer_idle("expiration-order-created-v1")
    await bus.publish(order_cancelled(created.id))
    await bus.wait_consumer_idle("expiration-order-cancelled-v1")
    await bus.publish(created)

    await assert_never_expires(bus, created.id, after=MARGIN + 0.5)


async def test_health_is_its_only_http_surface(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).json()["status"] == "ready"
    missing = await client.get("/api/orders")
    assert missing.status_code == 404
    assert missing.json() == {"errors": [{"message": "Not found"}]}


async def test_expiry_due_while_the_service_was_down_fires_when_it_is_back(
    app_factory: Callable[..., FastAPI], service_env: dict[str, str], database: Any, bus: TestBus
) -> None:
    created = order_created(expires_in=MARGIN)
    async with running(app_factory(database=database)):
        await bus.publish(created)
        await bus.wait_consumer_idle("expiration-order-created-v1")
    # Down past the order's expiry: nothing can fire it.
    await asyncio.sleep(max((created.expires_at - utc_in(0)).total_seconds(), 0) + 0.2)
    assert bus.published(OrderExpired) == []

    async with running(app_factory(database=database)):
        await bus.wait_for(OrderExpired, order_id=created.id)


async def test_expiry_claimed_before_a_crash_is_still_published(
    app_factory: Callable[..., FastAPI], service_env: dict[str, str], database: Any, bus: TestBus
) -> None:

    order_id = str(ObjectId())
    await repository.schedule(database, order_id=order_id, due_at=utc_in(-1))
    # A replica claims the timer and dies before its relay publishes.
    claimed = await service.fire_due_expirations(
        database, Outbox(CONTRACT.publishes, service=CONTRACT.name)
    )
    assert claimed == service.ExpiryPass(fired=1, next_due=None)

    async with running(app_factory(database=database)):
        await bus.wait_for(OrderExpired, order_id=order_id)
        await assert_never_expires(bus, after=0.3)
    assert len(bus.published(OrderExpired, order_id=order_id)) == 1


async def test_a_pass_that_fails_is_tried_again_without_a_new_timer_to_wake_it(
    app_factory: Callable[..., FastAPI],
    service_env: dict[str, str],
    database: Any,
    bus: TestBus,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order_id = str(ObjectId())
    await repository.schedule(database, order_id=order_id, due_at=utc_in(-1))
    read = repository.earliest_pending
    failures = [ConnectionError("the database is out of reach")]

    async def out_of_reach_once(db: Any, *, limit: int) -> list[Any]:
        if failures:
            raise failures.pop()
        return await read(db, limit=limit)

    monkeypatch.setattr(repository, "earliest_pending", out_of_reach_once)

    async with running(app_factory(database=database)):
        await bus.wait_for(OrderExpired, order_id=order_id)
    assert failures == []


async def test_two_replicas_on_one_database_expire_each_order_once(
    app_factory: Callable[..., FastAPI], service_env: dict[str, str], database: Any, bus: TestBus
) -> None:
    orders = [order_created(expires_in=0.5 + index * 0.02) for index in range(20)]
    async with running(app_factory(database=database)), running(app_factory(database=database)):
        for created in orders:
            await bus.publish(created)
        await bus.wait_for(OrderExpired, count=len(orders))
        await assert_never_expires(bus, after=0.3)

    for created in orders:
        assert len(bus.published(OrderExpired, order_id=created.id)) == 1


async def test_a_burst_is_claimed_in_batches_each_timer_once_and_none_early(
    database: Any,
) -> None:
    await repository.create_indexes(database)
    outbox = Outbox(CONTRACT.publishes, service=CONTRACT.name)
    due = [str(ObjectId()) for _ in range(7)]
    for order_id in due:
        await repository.schedule(database, order_id=order_id, due_at=utc_in(-1))
    later = str(ObjectId())
    later_due = ceil_to_millisecond(utc_in(3600))
    await repository.schedule(database, order_id=later, due_at=later_due)

    # Reads of at most 3: every due timer claimed once with its OrderExpired pending, and the
    # pass tells when the next one falls due.
    first = await service.fire_due_expirations(database, outbox, batch=3)
    again = await service.fire_due_expirations(database, outbox, batch=3)

    assert first == service.ExpiryPass(fired=7, next_due=later_due)
    assert again == service.ExpiryPass(fired=0, next_due=later_due)

    timers = {timer["_id"]: timer async for timer in database.expirations.find({})}
    for order_id in due:
        assert timers[order_id]["state"] == "fired"
        assert [entry["data"] for entry in timers[order_id]["outbox"]] == [{"orderId": order_id}]
    assert timers[later]["state"] == "pending" and "outbox" not in timers[later]


async def test_fired_and_dropped_timers_are_removed_after_the_retention(
    app: FastAPI, database: Any, eventually: Callable[..., Any]
) -> None:
    ended = utc_now() - repository.TOMBSTONE_RETENTION - timedelta(seconds=1)
    await database.expirations.insert_one({"_id": "old-fired", "state": "fired", "ended_at": ended})
    await repository.drop(database, order_id="old-dropped", reason="cancelled")
    await database.expirations.update_one({"_id": "old-dropped"}, {"$set": {"ended_at": ended}})
    await repository.drop(database, order_id="recent-dropped", reason="completed")
    await repository.schedule(database, order_id="pending", due_at=utc_in(3600))

    async def tombstones_gone() -> bool:
        left = {timer["_id"] async for timer in database.expirations.find({})}
        return left == {"recent-dropped", "pending"}

    # MongoDB's TTL monitor passes every 60 s; the embedded store's every second.
    await eventually(tombstones_gone, timeout=90)
