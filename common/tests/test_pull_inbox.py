"""A listener's pull requests on a real JetStream: a message is handed over as soon as it comes,
whatever an earlier request's late status says; an empty fetch ends within its timeout; a
consumer deleted under a waiting fetch fails it (the listener loop then subscribes again);
closing ends the open request at once; after the server crashed and came back, a waiting fetch
asks again rather than waiting out a request the server has forgotten; a server stopping in order
is waited out, not reported as a failed fetch."""

import asyncio
from decimal import Decimal
from pathlib import Path

import nats
import pytest
from common.events import Envelope, TicketCreated
from common.messaging import STREAM_NAME, PullInbox, connect_bus, ensure_stream
from common.settings import BusSettings
from gittix_testing import TestBus
from gittix_testing.processes import free_port, start_nats_server
from gittix_testing.waiting import wait_until
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import APIError

DURABLE = "svc-ticket-created-v1"
# Far longer than any test waits: a message held until its request expires fails the test.
LONG_FETCH_SECONDS = 60.0


CONSUMER = ConsumerConfig(
    name=DURABLE,
    durable_name=DURABLE,
    ack_policy=AckPolicy.EXPLICIT,
    filter_subject=TicketCreated.subject,
)


async def pulls_for(bus: TestBus) -> PullInbox:
    await bus.js.add_consumer(STREAM_NAME, config=CONSUMER)
    pulls = PullInbox(bus.js, DURABLE)
    await pulls.subscribe()
    return pulls


def ticket(ticket_id: str) -> TicketCreated:
    return TicketCreated(id=ticket_id, version=0, title="Gig", price=Decimal("5"), user_id="u1")


def ticket_ids(messages: list[Msg]) -> list[str]:
    return [Envelope.model_validate_json(m.data).data["id"] for m in messages]


async def three_fetched(bus: TestBus) -> tuple[PullInbox, list[Msg]]:
    """Fetches once three tickets are pending, until all three are in hand (the server sends
    them at once on one request; a busy machine may read them in more than one go)."""
    pulls = await pulls_for(bus)
    for number in range(3):
        await bus.publish(ticket(f"t{number}"))
    messages: list[Msg] = []
    async with asyncio.timeout(10):
        while len(messages) < 3:
            messages += await pulls.fetch(10, timeout=LONG_FETCH_SECONDS)
    return pulls, messages


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


async def test_messages_pending_go_out_on_one_request_in_order(bus: TestBus) -> None:
    pulls, messages = await three_fetched(bus)
    assert [m.metadata.sequence.stream for m in messages] == sorted(
        m.metadata.sequence.stream for m in messages
    )
    assert len(messages) == 3
    assert pulls._requests == 1  # the open request brought all three: one per batch


async def test_a_fetch_on_a_consumer_deleted_meanwhile_fails_rather_than_coming_back_empty(
    bus: TestBus,
) -> None:
    _, fetching = await fetch_waiting_at_the_server(bus)
    await bus.js.delete_consumer(STREAM_NAME, DURABLE)
    async with asyncio.timeout(10):
        with pytest.raises(APIError):
            await fetching


async def test_closing_ends_the_open_request_so_the_next_message_goes_to_another_replica(
    bus: TestBus,
) -> None:
    closing, fetching = await fetch_waiting_at_the_server(bus)
    async with asyncio.timeout(5):
        await closing.close()
        with pytest.raises(TimeoutError):
            await fetching
    other = PullInbox(bus.js, DURABLE)
    await other.subscribe()
    await bus.publish(ticket("t1"))
    # Had the closed inbox's request stayed open at the server, the message would go to it and
    # come back only after ack_wait (30 s).
    async with asyncio.timeout(10):
        messages = await other.fetch(10, timeout=LONG_FETCH_SECONDS)
    assert ticket_ids(messages) == ["t1"]


async def test_what_a_closing_inbox_held_goes_back_at_once(bus: TestBus) -> None:
    first, taken = await three_fetched(bus)
    first.hold(taken)
    await first.close()
    other = PullInbox(bus.js, DURABLE)
    await other.subscribe()
    got: list[str] = []
    async with asyncio.timeout(10):
        while len(got) < 3:
            messages = await other.fetch(10, timeout=LONG_FETCH_SECONDS)
            got += ticket_ids(messages)
    assert sorted(got) == ["t0", "t1", "t2"]


@pytest.mark.parametrize("stopped", ["crashed", "in order"])
async def test_a_waiting_fetch_gets_the_next_message_once_the_server_is_back(
    tmp_path: Path, stopped: str
) -> None:
    # Crashed (killed): the request the fetch was waiting on dies with the server, unanswered;
    # without asking again after the reconnect the fetch would wait out its 60 s. In order
    # (SIGTERM): the server answers each open request "409 Server Shutdown", which the fetch
    # once raised, so each listener logged a failed fetch on every rolling restart of NATS.
    port = free_port()
    server = start_nats_server(tmp_path, port=port)
    url = f"nats://127.0.0.1:{port}"
    nc, js = await connect_bus(url, name="svc")
    try:
        await ensure_stream(js)
        await js.add_consumer(STREAM_NAME, config=CONSUMER)
        pulls = PullInbox(js, DURABLE)
        await pulls.subscribe()
        fetching = asyncio.create_task(pulls.fetch(10, timeout=LONG_FETCH_SECONDS))
        await wait_until(
            lambda: _waiting(js), timeout=10, message="the fetch's request never arrived"
        )
        reconnects = nc.stats["reconnects"]
        if stopped == "crashed":
            server.kill()
        else:
            server.stop()
        server = start_nats_server(tmp_path, port=port)  # the same store: stream and consumer
        await wait_until(
            lambda: nc.stats["reconnects"] > reconnects and nc.is_connected,
            timeout=20,
            message="the listener's connection never came back",
        )
        assert not fetching.done()  # still waiting, not failed
        publisher = await nats.connect(url)
        try:
            await publisher.jetstream().publish(
                TicketCreated.subject, Envelope.wrap(ticket("t1")).to_bytes()
            )
        finally:
            await publisher.close()
        async with asyncio.timeout(10):
            messages = await fetching
        assert ticket_ids(messages) == ["t1"]
    finally:
        await nc.close()
        server.stop()


async def _waiting(js: nats.js.JetStreamContext) -> bool:
    return bool((await js.consumer_info(STREAM_NAME, DURABLE)).num_waiting)


def test_a_stall_time_shorter_than_two_fetches_is_refused() -> None:
    with pytest.raises(ValueError, match="LISTENER_STALL_SECONDS"):
        BusSettings(listener_fetch_seconds=20, listener_stall_seconds=30)
