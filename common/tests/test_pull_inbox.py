"""A listener's pull requests on a real JetStream: a message is handed over as soon as it comes,
whatever an earlier request's late status says; an empty fetch ends within its timeout; a
consumer deleted under a waiting fetch fails it (the listener loop then subscribes again)."""

import asyncio
from decimal import Decimal

import pytest
from common.events import TicketCreated
from common.messaging import STREAM_NAME, PullInbox
from gittix_testing import TestBus
from gittix_testing.waiting import wait_until
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import APIError

DURABLE = "svc-ticket-created-v1"
# Far longer than any test waits: a message held until its request expires fails the test.
LONG_FETCH_SECONDS = 60.0


async def pulls_for(bus: TestBus) -> PullInbox:
    config = ConsumerConfig(
        name=DURABLE,
        durable_name=DURABLE,
        ack_policy=AckPolicy.EXPLICIT,
        filter_subject=TicketCreated.subject,
    )
    await bus.js.add_consumer(STREAM_NAME, config=config)
    pulls = PullInbox(bus.js, DURABLE)
    await pulls.subscribe()
    return pulls


def ticket(ticket_id: str) -> TicketCreated:
    return TicketCreated(id=ticket_id, version=0, title="Gig", price=Decimal("5"), user_id="u1")


async def waiting_requests(bus: TestBus) -> int:
    return (await bus.js.consumer_info(STREAM_NAME, DURABLE)).num_waiting or 0


async def fetch_waiting_at_the_server(bus: TestBus) -> tuple[PullInbox, asyncio.Task[list[Msg]]]:
    """A long fetch, once the server holds its request (nothing is pending yet)."""
    pulls = await pulls_for(bus)
    fetching = asyncio.create_task(pulls.fetch(10, timeout=LONG_FETCH_SECONDS))
    await wait_until(
        lambda: waiting_requests(bus), timeout=10, message="the fetch's request never arrived"
    )
    return pulls, fetching


async def test_an_empty_fetch_ends_within_its_timeout(bus: TestBus) -> None:
    pulls = await pulls_for(bus)
    async with asyncio.timeout(10):
        with pytest.raises(TimeoutError):
            await pulls.fetch(10, timeout=0.5)


async def test_a_message_is_handed_over_at_once_after_an_earlier_requests_late_status(
    bus: TestBus,
) -> None:
    pulls, fetching = await fetch_waiting_at_the_server(bus)
    # What the server sends when a request expires, addressed to an earlier request (the one a
    # fetch gave up on a moment before its status came).
    await bus.nc.publish(
        f"{pulls.inbox}.0", b"", headers={"Status": "408", "Description": "Request Timeout"}
    )
    await bus.nc.flush()
    await bus.publish(ticket("t1"))
    async with asyncio.timeout(10):
        messages = await fetching
    assert len(messages) == 1
    assert b'"t1"' in messages[0].data


async def test_messages_pending_go_out_in_one_fetch_in_order(bus: TestBus) -> None:
    pulls = await pulls_for(bus)
    for number in range(3):
        await bus.publish(ticket(f"t{number}"))
    async with asyncio.timeout(10):
        messages = await pulls.fetch(10, timeout=LONG_FETCH_SECONDS)
    assert [m.metadata.sequence.stream for m in messages] == sorted(
        m.metadata.sequence.stream for m in messages
    )
    assert len(messages) == 3


async def test_a_fetch_on_a_consumer_deleted_meanwhile_fails_rather_than_coming_back_empty(
    bus: TestBus,
) -> None:
    _, fetching = await fetch_waiting_at_the_server(bus)
    await bus.js.delete_consumer(STREAM_NAME, DURABLE)
    async with asyncio.timeout(10):
        with pytest.raises(APIError):
            await fetching
