"""The stream's limits on a tiny stream: full means new events wait in the outbox (nothing stored
is deleted to make room), old events age out, and an existing stream is brought up to the limits."""

from decimal import Decimal
from typing import Any

import pytest
from common.events import TicketCreated
from common.messaging import STREAM_NAME, Publisher, StreamLimits, ensure_stream
from common.outbox import Outbox, OutboxRelay
from gittix_testing import TestBus, wait_until
from nats.js.api import DiscardPolicy, StreamConfig
from nats.js.errors import APIError

# Room for a handful of envelopes (each is about 300 bytes stored).
TINY = StreamLimits(max_bytes=2048, max_age_seconds=3600, duplicate_window_seconds=60)


def ticket(number: int) -> TicketCreated:
    return TicketCreated(id=f"t{number}", version=0, title="Gig", price=Decimal("5"), user_id="u1")


async def fill(bus: TestBus) -> int:
    """Publish until the stream refuses; how many it took."""
    publisher = Publisher(bus.js)
    for number in range(1000):
        try:
            await publisher.publish(ticket(number))
        except APIError:
            return number
    raise AssertionError("the stream never filled up")


async def test_a_full_stream_refuses_new_events_and_keeps_every_stored_one(bus: TestBus) -> None:
    await ensure_stream(bus.js, limits=TINY)

    stored = await fill(bus)

    state = (await bus.js.stream_info(STREAM_NAME)).state
    assert stored >= 3
    assert (state.first_seq, state.messages) == (1, stored)  # discard New: nothing deleted


async def test_a_refused_event_waits_in_its_outbox_and_goes_out_once_there_is_room(
    bus: TestBus, database: Any
) -> None:
    await ensure_stream(bus.js, limits=TINY)
    stored = await fill(bus)
    relay = OutboxRelay([database.tickets], Publisher(bus.js))
    outbox = Outbox()
    await outbox.insert_one(database.tickets, {"_id": "late", "version": 0}, ticket(9999))

    with pytest.raises(APIError):
        await relay.relay_once()
    assert len((await database.tickets.find_one({"_id": "late"}))["outbox"]) == 1

    # The operator's answer to the alert: more room (or a shorter retention).
    await ensure_stream(bus.js, limits=StreamLimits(max_bytes=1024**2))
    assert await relay.relay_once() == 1
    assert (await database.tickets.find_one({"_id": "late"}))["outbox"] == []
    assert (await bus.js.stream_info(STREAM_NAME)).state.messages == stored + 1


async def test_events_older_than_max_age_are_removed(bus: TestBus) -> None:
    await ensure_stream(
        bus.js, limits=StreamLimits(max_age_seconds=1.0, duplicate_window_seconds=1)
    )
    await Publisher(bus.js).publish(ticket(1))
    assert (await bus.js.stream_info(STREAM_NAME)).state.messages == 1

    async def emptied() -> bool:
        return (await bus.js.stream_info(STREAM_NAME)).state.messages == 0

    await wait_until(emptied, timeout=10, message="the old event was not removed")


async def test_a_stream_created_without_limits_is_brought_up_to_them(bus: TestBus) -> None:
    # As an earlier version created it: no limits, discard Old, a two-minute window.
    await bus.js.delete_stream(STREAM_NAME)
    await bus.js.add_stream(
        StreamConfig(name=STREAM_NAME, subjects=["ticketing.>"], duplicate_window=120)
    )
    await Publisher(bus.js).publish(ticket(1))

    await ensure_stream(bus.js)

    info = await bus.js.stream_info(STREAM_NAME)
    limits = StreamLimits()
    assert info.config.discard == DiscardPolicy.NEW
    assert info.config.max_bytes == limits.max_bytes
    assert info.config.max_age == limits.max_age_seconds
    assert info.config.duplicate_window == limits.duplicate_window_seconds
    assert info.state.messages == 1  # what it held is kept
