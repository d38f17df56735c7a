"""Listeners on shutdown: finish the message in hand, or give it back for another replica."""

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from common.events import Envelope, TicketCreated
from common.failures import FAILURES_COLLECTION, FailureLedger
from common.messaging import Listener, ListenerRunner
from gittix_testing import TestBus


@pytest.fixture
def ledger(database: Any) -> FailureLedger:
    return FailureLedger(database[FAILURES_COLLECTION])


class StuckListener(Listener[TicketCreated, Any]):
    """Handles nothing: every delivery hangs until the test lets it go."""

    event = TicketCreated

    def __init__(self) -> None:
        super().__init__(None)
        self.received = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, event: TicketCreated, envelope: Envelope) -> None:
        self.received.set()
        await self.release.wait()


class CountingListener(Listener[TicketCreated, Any]):
    event = TicketCreated

    def __init__(self) -> None:
        super().__init__(None)
        self.ids: list[str] = []
        self.changed = asyncio.Event()

    async def handle(self, event: TicketCreated, envelope: Envelope) -> None:
        self.ids.append(event.id)
        self.changed.set()


def ticket(ticket_id: str) -> TicketCreated:
    return TicketCreated(id=ticket_id, version=0, title="Gig", price=Decimal("5"), user_id="u1")


async def test_a_listener_cut_short_gives_its_messages_back_at_once(
    bus: TestBus, ledger: FailureLedger
) -> None:
    stuck = StuckListener()
    first = ListenerRunner(bus.js, "svc", [stuck], ledger)
    await first.start()
    for number in range(3):
        await bus.publish(ticket(f"t{number}"))
    await asyncio.wait_for(stuck.received.wait(), 10)

    async with asyncio.timeout(5):
        await first.stop(grace=0.2)

    # Another replica gets all three long before ack_wait (30 s) would have released them.
    other = CountingListener()
    second = ListenerRunner(bus.js, "svc", [other], ledger)
    await second.start()
    try:
        async with asyncio.timeout(10):
            while sorted(set(other.ids)) != ["t0", "t1", "t2"]:
                other.changed.clear()
                await other.changed.wait()
    finally:
        await second.stop()


async def test_a_listener_finishes_the_message_in_hand_before_stopping(
    bus: TestBus, ledger: FailureLedger
) -> None:
    stuck = StuckListener()
    runner = ListenerRunner(bus.js, "svc", [stuck], ledger)
    await runner.start()
    await bus.publish(ticket("t0"))
    await asyncio.wait_for(stuck.received.wait(), 10)

    stopping = asyncio.create_task(runner.stop(grace=5))
    stuck.release.set()
    async with asyncio.timeout(5):
        await stopping

    # The ack is sent before stop() returns; the server counts it a moment later.
    await bus.wait_consumer_idle("svc-ticket-created-v1")
    info = await bus.consumer_info("svc-ticket-created-v1")
    assert (info.num_ack_pending, info.num_pending, info.num_redelivered) == (0, 0, 0)
