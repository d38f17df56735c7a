"""The listener base on a real JetStream: ack, waiting that never gives up, failures counted apart
and dead-lettered, unparseable messages kept, supervised loops, stalled consumers."""

import asyncio
import logging
from decimal import Decimal
from typing import Any

import pytest
from common.deadletter import dead_letter_stream_config
from common.events import Envelope, TicketCreated, TicketUpdated
from common.failures import FAILURES_COLLECTION, FailureLedger
from common.messaging import ConsumerPolicy, Listener, ListenerRunner, RetryLater
from gittix_testing import TestBus
from gittix_testing.waiting import wait_until
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

DURABLE = "svc-ticket-created-v1"
# Short delays so that many redeliveries take a fraction of a second.
QUICK = ConsumerPolicy(
    failure_budget=3, retry_base_seconds=0.01, retry_max_seconds=0.02, wait_warning_seconds=60
)


def ticket(version: int = 0, ticket_id: str = "t1") -> TicketCreated:
    return TicketCreated(
        id=ticket_id, version=version, title="Gig", price=Decimal("5"), user_id="u1"
    )


class RecordingListener(Listener[TicketCreated, None]):
    event = TicketCreated

    def __init__(self, runtime: Any = None) -> None:
        super().__init__(runtime)
        self.seen: list[tuple[str, int]] = []
        self.fail_first = 0
        self.not_yet_first = 0
        self.blocked = asyncio.Event()
        self.blocked.set()
        self.done = asyncio.Event()

    async def handle(self, event: TicketCreated, envelope: Envelope) -> None:
        self.seen.append((event.id, len(self.seen) + 1))
        if self.not_yet_first > 0:
            self.not_yet_first -= 1
            raise RetryLater(f"ticket {event.id} v{event.version - 1} has not arrived")
        if self.fail_first > 0:
            self.fail_first -= 1
            raise RuntimeError("database hiccup")
        await self.blocked.wait()
        self.done.set()


@pytest.fixture
def ledger(database: Any) -> FailureLedger:
    return FailureLedger(database[FAILURES_COLLECTION])


@pytest.fixture
async def start(bus: TestBus, ledger: FailureLedger) -> Any:
    """start(listener, policy=QUICK): a running ListenerRunner, stopped after the test."""
    runners: list[ListenerRunner] = []

    async def start(listener: Listener[Any, Any], policy: ConsumerPolicy = QUICK) -> ListenerRunner:
        runner = ListenerRunner(bus.js, "svc", [listener], ledger, policy=policy)
        await runner.start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        await runner.stop()


async def test_handled_event_is_acked_once(bus: TestBus, start: Any) -> None:
    listener = RecordingListener()
    runner = await start(listener)
    await bus.publish(ticket())

    await asyncio.wait_for(listener.done.wait(), 10)
    await bus.wait_consumer_idle(DURABLE)

    assert [seen[0] for seen in listener.seen] == ["t1"]
    assert runner.consumers[0].stats.acked == 1


async def test_waiting_for_a_predecessor_never_gives_up(bus: TestBus, start: Any) -> None:
    # Forty waits: four times the ten deliveries after which the old listener gave up, and
    # more than ten times this policy's failure budget.
    listener = RecordingListener()
    listener.not_yet_first = 40
    runner = await start(listener)
    await bus.publish(ticket())

    await asyncio.wait_for(listener.done.wait(), 20)
    await bus.wait_consumer_idle(DURABLE)

    assert len(listener.seen) == 41
    assert runner.consumers[0].stats.waiting == 40
    assert await bus.dead_letters() == []


async def test_waits_between_failures_do_not_spend_the_failure_budget(
    bus: TestBus, start: Any
) -> None:
    listener = RecordingListener()
    listener.not_yet_first = 10
    listener.fail_first = QUICK.failure_budget - 1
    await start(listener)
    await bus.publish(ticket())

    await asyncio.wait_for(listener.done.wait(), 20)
    await bus.wait_consumer_idle(DURABLE)

    assert await bus.dead_letters() == []


async def test_a_long_wait_is_reported_and_the_event_still_applied(
    bus: TestBus, start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    listener = RecordingListener()
    listener.not_yet_first = 10**6  # until the test lets it through
    policy = ConsumerPolicy(
        retry_base_seconds=0.05, retry_max_seconds=0.1, wait_warning_seconds=0.5
    )
    with caplog.at_level(logging.WARNING, logger="common.messaging"):
        runner = await start(listener, policy)
        envelope = await bus.publish(ticket(version=1))
        await wait_until(
            lambda: runner.consumers[0].stats.long_waits,
            timeout=10,
            message="no long wait reported",
        )
        listener.not_yet_first = 0
        await asyncio.wait_for(listener.done.wait(), 10)

    warnings = [r.getMessage() for r in caplog.records if "event waiting long" in r.getMessage()]
    assert warnings, "no warning logged"
    assert envelope.id in warnings[0] and "ticket t1 v0 has not arrived" in warnings[0]
    # Reported once per threshold period, not on every redelivery.
    assert len(warnings) < runner.consumers[0].stats.waiting
    assert await bus.dead_letters() == []


async def test_failing_handler_is_dead_lettered_with_everything_needed_to_replay_it(
    bus: TestBus, start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    listener = RecordingListener()
    listener.fail_first = 100
    with caplog.at_level(logging.ERROR, logger="common.messaging"):
        runner = await start(listener)
        envelope = await bus.publish(ticket())
        [stored] = await wait_until(bus.dead_letters, timeout=10, message="nothing dead-lettered")
        await bus.wait_consumer_idle(DURABLE)

    record = stored.record
    assert record.subject == TicketCreated.subject
    assert record.headers["Nats-Msg-Id"] == envelope.id
    assert record.original_payload() == envelope.to_bytes()
    assert (record.consumer, record.service, record.reason) == (DURABLE, "svc", "failed")
    assert record.failures == QUICK.failure_budget == record.delivered
    assert record.last_error == "RuntimeError: database hiccup"
    assert (record.event_type, record.event_id) == ("TicketCreated", envelope.id)
    # Terminated after it was written: not delivered again, and its failure count is gone.
    assert len(listener.seen) == QUICK.failure_budget
    assert runner.consumers[0].stats.dead_lettered == 1
    assert await runner.ledger.count(consumer=DURABLE, stream="TICKETING", sequence=1) == 0
    assert any(
        "dead-lettered" in r.getMessage() and envelope.id in r.getMessage() for r in caplog.records
    )


async def test_failures_are_counted_across_a_restart(bus: TestBus, start: Any) -> None:
    # The first replica fails all but once, then hangs on the next delivery and is stopped.
    first = RecordingListener()
    first.fail_first = QUICK.failure_budget - 1
    first.blocked.clear()
    runner = await start(first)
    await bus.publish(ticket())
    await wait_until(
        lambda: len(first.seen) == QUICK.failure_budget, timeout=10, message="not redelivered"
    )
    await runner.stop(grace=0.1)

    second = RecordingListener()
    second.fail_first = 100
    await start(second)

    [stored] = await wait_until(bus.dead_letters, timeout=10, message="nothing dead-lettered")
    # One more failure was enough: the count went on from where the first replica left it.
    assert len(second.seen) == 1
    assert stored.record.failures == QUICK.failure_budget
    assert stored.record.delivered == QUICK.failure_budget + 1


async def test_a_handler_that_hangs_is_cut_short_and_counted_as_a_failure(
    bus: TestBus, start: Any
) -> None:
    listener = RecordingListener()
    listener.blocked.clear()  # hangs on every delivery
    # Cut short at 80 % of ack_wait: 1.2 s, before JetStream would redeliver on its own.
    await start(listener, ConsumerPolicy(failure_budget=2, ack_wait_seconds=1.5))
    await bus.publish(ticket())

    [stored] = await wait_until(bus.dead_letters, timeout=20, message="nothing dead-lettered")
    assert stored.record.last_error == "the handler took longer than 1.2 s"
    assert (stored.record.failures, stored.record.delivered) == (2, 2)


async def test_an_unparseable_message_is_dead_lettered_not_lost(
    bus: TestBus, start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    listener = RecordingListener()
    payload = b'{"id": "x", "type": "TicketCreated"}'
    with caplog.at_level(logging.ERROR, logger="common.messaging"):
        await start(listener)
        await bus.publish_raw(TicketCreated.subject, payload, msg_id="broken-1")
        await bus.publish(ticket(ticket_id="good"))
        await asyncio.wait_for(listener.done.wait(), 10)
        [stored] = await wait_until(bus.dead_letters, timeout=10, message="nothing dead-lettered")

    assert [seen[0] for seen in listener.seen] == ["good"]
    record = stored.record
    assert (record.reason, record.subject, record.payload) == (
        "unparseable",
        TicketCreated.subject,
        payload.decode(),
    )
    assert record.event_id == "x" and record.headers["Nats-Msg-Id"] == "broken-1"
    assert "dead-lettered" in caplog.text


async def test_a_payload_that_is_not_text_is_kept_byte_for_byte(bus: TestBus, start: Any) -> None:
    await start(RecordingListener())
    payload = b"\xff\xfe not json"
    await bus.publish_raw(TicketCreated.subject, payload)

    [stored] = await wait_until(bus.dead_letters, timeout=10, message="nothing dead-lettered")
    assert stored.record.payload is None
    assert stored.record.original_payload() == payload


async def test_with_the_dead_letter_stream_full_the_message_is_kept_and_retried(
    bus: TestBus, start: Any
) -> None:
    # Room for nothing: the record is refused, so the message must not be terminated.
    await bus.js.update_stream(dead_letter_stream_config(max_bytes=16))
    runner = await start(RecordingListener())
    await bus.publish_raw(TicketCreated.subject, b"not json")
    await bus.wait_redelivered(DURABLE)

    info = await bus.consumer_info(DURABLE)
    assert info.num_ack_pending + info.num_pending == 1  # still there, retried
    assert runner.consumers[0].stats.unparseable == 0


async def test_two_replicas_share_one_durable_consumer(bus: TestBus, start: Any) -> None:
    first, second = RecordingListener(), RecordingListener()
    await start(first)
    await start(second)
    for number in range(20):
        await bus.publish(ticket(ticket_id=f"t{number}"))

    await bus.wait_consumer_idle(DURABLE)

    handled = sorted(seen[0] for seen in first.seen + second.seen)
    assert handled == sorted(f"t{number}" for number in range(20))


async def test_listener_only_gets_its_own_event_type(bus: TestBus, start: Any) -> None:
    listener = RecordingListener()
    await start(listener)
    await bus.publish(
        TicketUpdated(id="t1", version=1, title="x", price=Decimal("1"), user_id="u", order_id=None)
    )
    await bus.publish(ticket(ticket_id="created"))

    await asyncio.wait_for(listener.done.wait(), 10)

    assert [seen[0] for seen in listener.seen] == ["created"]


async def test_a_listener_loop_that_dies_is_restarted(
    bus: TestBus, start: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_ack = Msg.ack
    failed_acks = 0

    async def ack_that_fails_once(self: Msg) -> None:
        nonlocal failed_acks
        if failed_acks == 0:
            failed_acks += 1
            raise ConnectionResetError("connection lost while acknowledging")
        await real_ack(self)

    monkeypatch.setattr(Msg, "ack", ack_that_fails_once)
    listener = RecordingListener()
    with caplog.at_level(logging.ERROR, logger="common.messaging"):
        runner = await start(listener)
        await bus.publish(ticket())
        await wait_until(
            lambda: runner.consumers[0].stats.acked, timeout=15, message="never handled"
        )
        await bus.wait_consumer_idle(DURABLE)

    assert runner.consumers[0].stats.restarts == 1
    assert any(f"listener {DURABLE} died" in r.getMessage() for r in caplog.records)
    # Handled again after the restart (idempotent handlers make the repeat harmless).
    assert [seen[0] for seen in listener.seen] == ["t1", "t1"]

    # And it keeps working afterwards.
    listener.done.clear()
    await bus.publish(ticket(ticket_id="t2"))
    await asyncio.wait_for(listener.done.wait(), 10)


async def test_a_durable_consumer_deleted_under_a_running_listener_is_created_again(
    bus: TestBus, start: Any
) -> None:
    listener = RecordingListener()
    runner = await start(listener, ConsumerPolicy(stall_seconds=2.0))
    await bus.publish(ticket(ticket_id="before"))
    await asyncio.wait_for(listener.done.wait(), 10)

    await bus.js.delete_consumer("TICKETING", DURABLE)
    listener.done.clear()
    await bus.publish(ticket(ticket_id="after"))

    await asyncio.wait_for(listener.done.wait(), 30)
    assert "after" in [seen[0] for seen in listener.seen]
    assert runner.consumers[0].stats.restarts >= 1


async def test_a_consumer_stuck_on_a_message_is_reported_stalled(bus: TestBus, start: Any) -> None:
    listener = RecordingListener()
    listener.blocked.clear()
    runner = await start(listener, ConsumerPolicy(stall_seconds=0.5))
    assert runner.stalled() == []

    await bus.publish(ticket())
    stalled = await wait_until(runner.stalled, timeout=10, message="never reported stalled")
    assert stalled == [DURABLE]
    [lag] = await runner.lag()
    assert (lag["consumer"], lag["stalled"], lag["ack_pending"]) == (DURABLE, True, 1)

    listener.blocked.set()
    await asyncio.wait_for(listener.done.wait(), 10)
    assert await wait_until(lambda: not runner.stalled(), timeout=10, message="still stalled")


def test_retry_delay_backs_off_is_capped_and_never_overflows() -> None:
    policy = ConsumerPolicy(retry_base_seconds=0.05, retry_max_seconds=5.0)

    delays = [policy.retry_delay(attempt) for attempt in range(1, 12)]

    assert delays[:3] == [0.05, 0.1, 0.2]
    assert max(delays) == 5.0
    assert policy.retry_delay(100_000) == 5.0  # a wait of days: still the cap, no overflow


async def test_a_consumer_left_by_an_older_version_is_brought_up_to_date(
    bus: TestBus, start: Any
) -> None:
    # Created as the listeners before this change did: giving up after ten deliveries.
    await bus.js.add_consumer(
        "TICKETING",
        ConsumerConfig(
            durable_name=DURABLE,
            ack_policy=AckPolicy.EXPLICIT,
            max_deliver=10,
            ack_wait=30,
            filter_subject=TicketCreated.subject,
        ),
    )
    listener = RecordingListener()
    listener.not_yet_first = 15
    await start(listener)
    await bus.publish(ticket())

    await asyncio.wait_for(listener.done.wait(), 20)
    assert (await bus.consumer_info(DURABLE)).config.max_deliver == -1
