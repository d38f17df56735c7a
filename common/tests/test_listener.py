"""The listener base on a real JetStream: ack, retry later, bounded redelivery, dropped messages."""

import asyncio
import logging
from decimal import Decimal
from typing import Any

import pytest
from common.events import Envelope, TicketCreated, TicketUpdated
from common.messaging import Listener, ListenerRunner, RetryLater
from gittix_testing import TestBus


def ticket(version: int = 0, ticket_id: str = "t1") -> TicketCreated:
    return TicketCreated(
        id=ticket_id, version=version, title="Gig", price=Decimal("5"), user_id="u1"
    )


class RecordingListener(Listener[TicketCreated, None]):
    event = TicketCreated
    max_deliver = 4
    base_delay_seconds = 0.05

    def __init__(self, runtime: Any = None) -> None:
        super().__init__(runtime)
        self.seen: list[tuple[str, int]] = []
        self.fail_first = 0
        self.not_yet_first = 0
        self.done = asyncio.Event()

    async def handle(self, event: TicketCreated, envelope: Envelope) -> None:
        self.seen.append((event.id, len(self.seen) + 1))
        if self.not_yet_first > 0:
            self.not_yet_first -= 1
            raise RetryLater("predecessor missing")
        if self.fail_first > 0:
            self.fail_first -= 1
            raise RuntimeError("database hiccup")
        self.done.set()


async def run_listener(
    bus: TestBus, listener: Listener[Any, Any], service: str = "svc"
) -> ListenerRunner:
    runner = ListenerRunner(bus.js, service, [listener])
    await runner.start()
    return runner


async def test_handled_event_is_acked_once(bus: TestBus) -> None:
    listener = RecordingListener()
    runner = await run_listener(bus, listener)
    await bus.publish(ticket())

    await asyncio.wait_for(listener.done.wait(), 10)
    await bus.wait_consumer_idle("svc-ticket-created-v1")
    await runner.stop()

    assert [seen[0] for seen in listener.seen] == ["t1"]


async def test_retry_later_redelivers_until_it_can_be_applied(bus: TestBus) -> None:
    listener = RecordingListener()
    listener.not_yet_first = 2
    runner = await run_listener(bus, listener)
    await bus.publish(ticket())

    await asyncio.wait_for(listener.done.wait(), 10)
    await runner.stop()

    assert len(listener.seen) == 3


async def test_failing_handler_is_dead_lettered_after_max_deliver(
    bus: TestBus, caplog: pytest.LogCaptureFixture
) -> None:
    listener = RecordingListener()
    listener.fail_first = 100
    runner = await run_listener(bus, listener)
    with caplog.at_level(logging.ERROR, logger="common.messaging"):
        envelope = await bus.publish(ticket())
        await bus.wait_consumer_idle("svc-ticket-created-v1")
        await asyncio.sleep(0.3)  # nothing more may arrive after the terminating delivery
    await runner.stop()

    assert len(listener.seen) == RecordingListener.max_deliver
    assert any(
        "dead-lettered" in record.getMessage() and envelope.id in record.getMessage()
        for record in caplog.records
    )


async def test_unparseable_message_is_dropped_with_a_log_line(
    bus: TestBus, caplog: pytest.LogCaptureFixture
) -> None:
    listener = RecordingListener()
    runner = await run_listener(bus, listener)
    with caplog.at_level(logging.ERROR, logger="common.messaging"):
        await bus.publish_raw(TicketCreated.subject, b'{"id": "x", "type": "TicketCreated"}')
        await bus.publish(ticket(ticket_id="good"))
        await asyncio.wait_for(listener.done.wait(), 10)
    await runner.stop()

    assert [seen[0] for seen in listener.seen] == ["good"]
    assert any("event dropped" in record.getMessage() for record in caplog.records)


async def test_two_replicas_share_one_durable_consumer(bus: TestBus) -> None:
    first, second = RecordingListener(), RecordingListener()
    runners = [await run_listener(bus, first), await run_listener(bus, second)]
    for number in range(20):
        await bus.publish(ticket(ticket_id=f"t{number}"))

    await bus.wait_consumer_idle("svc-ticket-created-v1")
    for runner in runners:
        await runner.stop()

    handled = sorted(seen[0] for seen in first.seen + second.seen)
    assert handled == sorted(f"t{number}" for number in range(20))


async def test_listener_only_gets_its_own_event_type(bus: TestBus) -> None:
    listener = RecordingListener()
    runner = await run_listener(bus, listener)
    await bus.publish(
        TicketUpdated(id="t1", version=1, title="x", price=Decimal("1"), user_id="u", order_id=None)
    )
    await bus.publish(ticket(ticket_id="created"))

    await asyncio.wait_for(listener.done.wait(), 10)
    await runner.stop()

    assert [seen[0] for seen in listener.seen] == ["created"]


def test_retry_delay_backs_off_and_is_capped() -> None:
    listener = RecordingListener()

    delays = [listener.retry_delay(delivered) for delivered in range(1, 12)]

    assert delays[:3] == [0.05, 0.1, 0.2]
    assert max(delays) == listener.max_delay_seconds
