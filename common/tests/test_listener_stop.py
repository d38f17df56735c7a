"""Stopping listeners while messages keep arriving: stop always returns, however the race falls.

On Python 3.11, nats-py's fetch waits in an inner task through asyncio.wait_for, which returns
the message instead of raising when a cancellation lands in the same loop iteration as the
message; the listener's task then never sees its cancellation. A runner that relied on cancelling
alone looped forever and its service never stopped (the tickets suite once hung in an app
fixture's teardown this way). The runner must stop by its own flag, whatever the cancel does.
"""

import asyncio
from decimal import Decimal
from typing import Any

from common.events import Envelope, TicketCreated
from common.failures import FAILURES_COLLECTION, FailureLedger
from common.messaging import Listener, ListenerRunner
from gittix_testing import TestBus, wait_until

ROUNDS = 10
# Far above what a stop takes (the fetch in hand, at most a second); a stop that lost its
# cancellation never returns at all.
STOP_SECONDS = 15.0


class CountingListener(Listener):  # type: ignore[type-arg]
    event = TicketCreated

    def __init__(self) -> None:
        super().__init__(None)
        self.handled = 0

    async def handle(self, event: Any, envelope: Envelope) -> None:
        self.handled += 1


async def test_stop_returns_while_messages_keep_arriving(bus: TestBus, database: Any) -> None:
    publishing = True

    async def publish_continuously() -> None:
        number = 0
        while publishing:
            number += 1
            await bus.publish(
                TicketCreated(
                    id=f"t{number}", version=0, title="Gig", price=Decimal("5"), user_id="u1"
                )
            )

    publisher = asyncio.create_task(publish_continuously())
    try:
        for round_number in range(ROUNDS):
            listener = CountingListener()
            runner = ListenerRunner(
                bus.js, "svc", [listener], FailureLedger(database[FAILURES_COLLECTION])
            )
            await runner.start()
            # Stop in the middle of the flow, while fetches are returning messages.
            await wait_until(
                lambda: listener.handled >= 1 + round_number % 4,  # noqa: B023
                timeout=10,
                message="the listener handled nothing",
            )
            # asyncio.wait, not asyncio.timeout: a stop stuck in gathering a task that lost its
            # cancellation cannot be cancelled either.
            stopping = asyncio.create_task(runner.stop())
            stopped, _ = await asyncio.wait({stopping}, timeout=STOP_SECONDS)
            assert stopped, f"round {round_number}: stop did not return within {STOP_SECONDS}s"
    finally:
        publishing = False
        await publisher
