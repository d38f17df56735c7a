"""The outbox relay: a pending event left by a crash still goes out, exactly once."""

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import nats.errors
import pytest
from common.events import Envelope, OrderExpired, TicketCreated, TicketUpdated
from common.messaging import STREAM_NAME, Publisher
from common.outbox import Outbox, OutboxRelay, outbox_entry
from gittix_testing import TestBus, wait_until
from gittix_testing.databases import CountingReads


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


def ticket_created(ticket_id: str) -> TicketCreated:
    return TicketCreated(id=ticket_id, version=0, title="Gig", price=Decimal("1"), user_id="u")


async def test_a_write_through_the_outbox_wakes_the_relay_without_waiting_for_its_poll(
    bus: TestBus, database: Any
) -> None:
    # A poll this long never fires during the test: only the wake-up can publish promptly.
    relay = OutboxRelay([database.tickets], Publisher(bus.js), poll_seconds=3600)
    outbox = Outbox((TicketCreated, TicketUpdated), service="tickets")
    outbox.attach(relay)
    # Something pending from before the start, so we can tell when its first pass is over.
    await database.tickets.insert_one({"_id": "t0", "outbox": [outbox_entry(ticket_created("t0"))]})
    relay.start()
    try:
        await bus.wait_for(TicketCreated, id="t0")

        # Nothing announces the end of a pass; its last step is pulling the entry it published.
        async def first_pass_over() -> bool:
            return not (await database.tickets.find_one({"_id": "t0"}))["outbox"]

        await wait_until(first_pass_over, timeout=10, message="t0 still in the outbox")

        await outbox.insert_one(database.tickets, {"_id": "t1", "version": 0}, ticket_created("t1"))
        await bus.wait_for(TicketCreated, id="t1", timeout=10)

        updated = TicketUpdated(
            id="t1", version=1, title="Gig", price=Decimal("2"), user_id="u", order_id=None
        )
        await outbox.find_one_and_update(
            database.tickets, {"_id": "t1", "version": 0}, {"$set": {"version": 1}}, updated
        )
        await bus.wait_for(TicketUpdated, id="t1", timeout=10)
    finally:
        await relay.stop()


async def test_the_change_and_its_event_are_one_write_and_undeclared_events_are_refused(
    database: Any,
) -> None:
    outbox = Outbox((TicketCreated, TicketUpdated), service="tickets")
    stored = await outbox.insert_one(
        database.tickets, {"_id": "t1", "version": 0, "tags": []}, ticket_created("t1")
    )
    assert [entry["type"] for entry in stored["outbox"]] == ["TicketCreated"]

    updated = TicketUpdated(
        id="t1", version=1, title="Gig", price=Decimal("2"), user_id="u", order_id=None
    )
    after = await outbox.find_one_and_update(
        database.tickets,
        {"_id": "t1", "version": 0},
        {"$set": {"version": 1}, "$push": {"tags": "new"}},
        updated,
        return_document=True,
    )
    assert after["version"] == 1 and after["tags"] == ["new"]
    assert [entry["type"] for entry in after["outbox"]] == ["TicketCreated", "TicketUpdated"]
    # A stale version matches nothing: no change, no event.
    assert (
        await outbox.find_one_and_update(
            database.tickets, {"_id": "t1", "version": 0}, {"$set": {"version": 1}}, updated
        )
        is None
    )

    with pytest.raises(TypeError, match="tickets does not declare that it publishes OrderExpired"):
        await outbox.update_one(
            database.tickets, {"_id": "t1"}, {"$set": {"x": 1}}, OrderExpired(order_id="o1")
        )
    assert len((await database.tickets.find_one({"_id": "t1"}))["outbox"]) == 2


async def test_the_relay_reads_only_the_documents_written_and_sweeps_the_rest_later(
    bus: TestBus, database: Any
) -> None:
    # Neither the poll nor the periodic sweep comes during the test: only handed ids go out.
    relay = OutboxRelay(
        [database.tickets], Publisher(bus.js), poll_seconds=3600, sweep_seconds=3600
    )
    outbox = Outbox((TicketCreated,), service="tickets")
    outbox.attach(relay)
    relay.start()
    try:
        # Left behind by a crash after the start's sweep: nobody hands the relay its id.
        await relay.relay_once()
        await database.tickets.insert_one(
            {"_id": "left", "outbox": [outbox_entry(ticket_created("left"))]}
        )
        await outbox.insert_one(database.tickets, {"_id": "t1"}, ticket_created("t1"))
        await bus.wait_for(TicketCreated, id="t1", timeout=10)
        assert [event.id for event in bus.published(TicketCreated)] == ["t1"]
    finally:
        await relay.stop()
    # The stop's last pass sweeps the pending index, and finds what the crash left.
    await bus.wait_for(TicketCreated, id="left", timeout=10)


def ticket_updated(ticket_id: str, version: int) -> TicketUpdated:
    return TicketUpdated(
        id=ticket_id, version=version, title="Gig", price=Decimal("1"), user_id="u", order_id=None
    )


def stream_order(bus: TestBus) -> list[tuple[str, int]]:
    """Each event the stream stored, as (type, version), in the stream's order."""
    return [
        (envelope.type, getattr(event, "version", -1)) for envelope, event in bus.recorder.received
    ]


class FailingFirstPublish(Publisher):
    """A publisher whose first publish gets no ack (the stream did not answer in time)."""

    def __init__(self, js: Any) -> None:
        super().__init__(js)
        self.failed = False

    async def publish_envelope(
        self, envelope: Envelope, *, trace_context: Mapping[str, str] | None = None
    ) -> bool:
        if not self.failed:
            self.failed = True
            raise nats.errors.TimeoutError
        return await super().publish_envelope(envelope, trace_context=trace_context)


async def attached_relay(
    database: Any, publisher: Publisher, *, tickets: Any = None, sweep: bool = True
) -> tuple[OutboxRelay, Outbox]:
    """A relay of `tickets` (the database's collection unless given), past its start's sweep
    unless `sweep` is False, and an outbox handing it what it writes."""
    relay = OutboxRelay([database.tickets if tickets is None else tickets], publisher)
    outbox = Outbox((TicketCreated, TicketUpdated), service="tickets")
    outbox.attach(relay)
    if sweep:
        await relay.relay_once()
    return relay, outbox


async def left_by_a_crash(database: Any) -> None:
    """Ticket t1 at version 0 with its TicketCreated still pending, as a crash leaves it."""
    await database.tickets.insert_one(
        {"_id": "t1", "version": 0, "outbox": [outbox_entry(ticket_created("t1"))]}
    )


async def update_to_version_1(outbox: Outbox, database: Any) -> None:
    """Ticket t1 from version 0 to 1, TicketUpdated v1 in the same write."""
    await outbox.find_one_and_update(
        database.tickets,
        {"_id": "t1", "version": 0},
        {"$set": {"version": 1}},
        ticket_updated("t1", 1),
    )


async def assert_created_then_updated(bus: TestBus) -> None:
    """The stream holds t1's TicketCreated v0, then its TicketUpdated v1, and nothing else."""
    await bus.wait_for(TicketCreated)
    await bus.wait_for(TicketUpdated)
    assert stream_order(bus) == [("TicketCreated", 0), ("TicketUpdated", 1)]


async def test_events_written_through_the_outbox_go_out_once_in_order_without_a_read_back(
    bus: TestBus, database: Any
) -> None:
    tickets: Any = CountingReads(database.tickets)
    relay, outbox = await attached_relay(database, Publisher(bus.js), tickets=tickets)
    tickets.reads = 0  # the start's sweep read the (empty) pending index

    # Each write's event goes out before the next write, as the running relay does it.
    await outbox.insert_one(database.tickets, {"_id": "t1", "version": 0}, ticket_created("t1"))
    assert await relay.relay_written() == 1
    await update_to_version_1(outbox, database)
    assert await relay.relay_written() == 1
    await outbox.update_one(
        database.tickets, {"_id": "t1"}, {"$set": {"version": 2}}, ticket_updated("t1", 2)
    )
    assert await relay.relay_written() == 1

    await bus.wait_for(TicketUpdated, count=2)
    assert stream_order(bus) == [("TicketCreated", 0), ("TicketUpdated", 1), ("TicketUpdated", 2)]
    assert (await bus.js.stream_info(STREAM_NAME)).state.messages == 3
    assert (await database.tickets.find_one({"_id": "t1"}))["outbox"] == []
    assert tickets.reads == 0
    assert await relay.relay_once() == 0  # nothing left for a sweep either


async def test_a_newer_event_never_overtakes_an_older_one_whose_publish_failed(
    bus: TestBus, database: Any
) -> None:
    relay, outbox = await attached_relay(database, FailingFirstPublish(bus.js))
    await outbox.insert_one(database.tickets, {"_id": "t1", "version": 0}, ticket_created("t1"))
    with pytest.raises(nats.errors.TimeoutError):
        await relay.relay_written()

    await update_to_version_1(outbox, database)
    await relay.relay_written()
    await relay.relay_once()  # and whatever a sweep would still find

    await assert_created_then_updated(bus)
    assert (await database.tickets.find_one({"_id": "t1"}))["outbox"] == []


async def test_a_newer_event_waits_for_an_older_one_a_failed_sweep_left_in_its_document(
    bus: TestBus, database: Any
) -> None:
    # Left by a crash: the start's sweep finds it, and its publish fails.
    await left_by_a_crash(database)
    relay, outbox = await attached_relay(database, FailingFirstPublish(bus.js), sweep=False)
    with pytest.raises(nats.errors.TimeoutError):
        await relay.relay_once()

    await update_to_version_1(outbox, database)
    await relay.relay_written()
    await relay.relay_once()

    await assert_created_then_updated(bus)


async def test_an_event_written_before_the_first_sweep_waits_for_what_a_crash_left_in_its_document(
    bus: TestBus, database: Any
) -> None:
    await left_by_a_crash(database)
    relay, outbox = await attached_relay(database, Publisher(bus.js), sweep=False)
    await update_to_version_1(outbox, database)
    await relay.relay_once()  # the start's pass

    await assert_created_then_updated(bus)


async def test_an_event_written_by_id_waits_for_one_written_without_naming_the_document(
    bus: TestBus, database: Any
) -> None:
    relay, outbox = await attached_relay(database, Publisher(bus.js))
    await database.tickets.insert_one({"_id": "t1", "version": 0, "outbox": []})
    # `$in` does not name one document: the relay is told only to sweep.
    await outbox.update_one(
        database.tickets,
        {"_id": {"$in": ["t1"]}},
        {"$set": {"version": 1}},
        ticket_updated("t1", 1),
    )
    await outbox.find_one_and_update(
        database.tickets, {"_id": "t1"}, {"$set": {"version": 2}}, ticket_updated("t1", 2)
    )
    await relay.relay_once()  # asked for by the first write

    await bus.wait_for(TicketUpdated, count=2)
    assert stream_order(bus) == [("TicketUpdated", 1), ("TicketUpdated", 2)]


async def test_a_newer_event_written_by_another_replica_never_overtakes_an_older_one(
    bus: TestBus, database: Any
) -> None:
    # Two replicas of one service, each with its own relay, write the same document.
    relay_a, outbox_a = await attached_relay(database, FailingFirstPublish(bus.js))
    relay_b, outbox_b = await attached_relay(database, Publisher(bus.js))
    await outbox_a.insert_one(database.tickets, {"_id": "t1", "version": 0}, ticket_created("t1"))
    with pytest.raises(nats.errors.TimeoutError):
        await relay_a.relay_written()  # no ack: A's event is still pending in the document

    await update_to_version_1(outbox_b, database)
    await relay_b.relay_written()
    await relay_a.relay_written()  # A's retry

    await assert_created_then_updated(bus)
    assert (await database.tickets.find_one({"_id": "t1"}))["outbox"] == []


async def test_after_a_failed_pass_events_waiting_for_the_bus_are_read_from_the_store(
    bus: TestBus, database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two documents in flight at a time, so the third waits while the first pass fails.
    monkeypatch.setattr("common.outbox.IN_FLIGHT", 2)
    tickets: Any = CountingReads(database.tickets)
    relay, outbox = await attached_relay(database, FailingFirstPublish(bus.js), tickets=tickets)
    for ticket_id in ("t1", "t2", "t3"):
        await outbox.insert_one(database.tickets, {"_id": ticket_id}, ticket_created(ticket_id))
    with pytest.raises(nats.errors.TimeoutError):
        await relay.relay_written()
    tickets.reads = 0

    # What a failed pass did not publish is no longer held in memory: the store has it.
    assert await relay.relay_written() == 2
    assert tickets.reads == 2
    await bus.wait_for(TicketCreated, count=3)
    assert sorted(event.id for event in bus.published(TicketCreated)) == ["t1", "t2", "t3"]
