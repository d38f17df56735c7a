"""The outbox relay: a pending event left by a crash still goes out, exactly once."""

from decimal import Decimal
from typing import Any

from common.events import Envelope, TicketCreated
from common.messaging import STREAM_NAME, Publisher
from common.outbox import OutboxRelay, outbox_entry
from gittix_testing import TestBus


async def test_pending_event_left_by_a_crash_is_published_once_by_the_next_relay(
    bus: TestBus, database: Any
) -> None:
    # The write happened, then the process died before publishing: only the document knows.
    event = TicketCreated(id="t1", version=0, title="Gig", price=Decimal("9.99"), user_id="u1")
    await database.tickets.insert_one({"_id": "t1", "version": 0, "outbox": [outbox_entry(event)]})

    relay = OutboxRelay([database.tickets], Publisher(bus.js))
    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 0

    received = await bus.wait_for(TicketCreated, id="t1")
    assert received.price == Decimal("9.99")
    assert (await database.tickets.find_one({"_id": "t1"}))["outbox"] == []


async def test_relay_that_dies_after_publishing_republishes_and_the_stream_drops_it(
    bus: TestBus, database: Any
) -> None:
    entry = outbox_entry(
        TicketCreated(id="t1", version=0, title="Gig", price=Decimal("1"), user_id="u")
    )
    await database.tickets.insert_one({"_id": "t1", "outbox": [entry]})
    # Published, then crashed before removing it from the outbox.
    await Publisher(bus.js).publish_envelope(Envelope.model_validate(entry))

    await OutboxRelay([database.tickets], Publisher(bus.js)).relay_once()

    info = await bus.js.stream_info(STREAM_NAME)
    assert info.state.messages == 1


async def test_entries_of_one_document_go_out_in_order(bus: TestBus, database: Any) -> None:
    entries = [
        outbox_entry(
            TicketCreated(id="t1", version=v, title="Gig", price=Decimal("1"), user_id="u")
        )
        for v in range(3)
    ]
    await database.tickets.insert_one({"_id": "t1", "outbox": entries})

    await OutboxRelay([database.tickets], Publisher(bus.js)).relay_once()

    await bus.wait_for(TicketCreated, count=3)
    assert [event.version for event in bus.published(TicketCreated)] == [0, 1, 2]
