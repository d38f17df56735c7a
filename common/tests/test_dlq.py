"""The dead-letter command on a real JetStream: list, show, replay (twice: harmless) and discard."""

import asyncio
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from common.dlq import replay, run
from common.events import Envelope, TicketCreated
from common.failures import FAILURES_COLLECTION, FailureLedger
from common.messaging import ConsumerPolicy, Listener, ListenerRunner
from gittix_testing import TestBus
from gittix_testing.waiting import wait_until

DURABLE = "svc-ticket-created-v1"
QUICK = ConsumerPolicy(failure_budget=2, retry_base_seconds=0.01, retry_max_seconds=0.02)


class BrokenUntilFixed(Listener[TicketCreated, None]):
    """Fails every delivery until `fixed` (a bug, then its fix deployed)."""

    event = TicketCreated

    def __init__(self) -> None:
        super().__init__(None)
        self.fixed = False
        self.handled: list[str] = []

    async def handle(self, event: TicketCreated, envelope: Envelope) -> None:
        if not self.fixed:
            raise ValueError(f"cannot handle {event.id}")
        self.handled.append(event.id)


@pytest.fixture
async def listener(bus: TestBus, database: Any) -> Any:
    broken = BrokenUntilFixed()
    runner = ListenerRunner(
        bus.js, "svc", [broken], FailureLedger(database[FAILURES_COLLECTION]), policy=QUICK
    )
    await runner.start()
    yield broken
    await runner.stop()


async def dlq(bus: TestBus, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = await run(list(argv), nats_url=bus.url, out=out)
    return status, out.getvalue()


async def dead_lettered(bus: TestBus, count: int) -> list[Any]:
    async def stored() -> list[Any] | None:
        letters = await bus.dead_letters()
        return letters if len(letters) == count else None

    return await wait_until(stored, timeout=10, message=f"expected {count} dead letter(s)")


def ticket(ticket_id: str) -> TicketCreated:
    return TicketCreated(id=ticket_id, version=0, title="Gig", price=Decimal("5"), user_id="u")


async def test_list_and_show_say_what_failed_where_and_why(
    bus: TestBus, listener: BrokenUntilFixed
) -> None:
    envelope = await bus.publish(ticket("t1"))
    [stored] = await dead_lettered(bus, 1)

    status, listing = await dlq(bus, "list")
    assert status == 0
    assert str(stored.sequence) in listing and DURABLE in listing and envelope.id in listing
    assert "ValueError: cannot handle t1" in listing and "1 dead letter(s)" in listing
    assert (await dlq(bus, "list", "--consumer", "other-consumer"))[1].strip() == (
        "0 dead letter(s)"
    )

    status, shown = await dlq(bus, "show", str(stored.sequence))
    record = json.loads(shown)
    assert status == 0
    assert record["subject"] == TicketCreated.subject and record["consumer"] == DURABLE
    assert json.loads(record["payload"])["id"] == envelope.id
    assert (record["delivered"], record["failures"], record["reason"]) == (2, 2, "failed")

    assert (await dlq(bus, "show", "999"))[0] == 1


async def test_replay_after_the_fix_delivers_it_once_and_a_second_replay_does_nothing(
    bus: TestBus, listener: BrokenUntilFixed
) -> None:
    envelope = await bus.publish(ticket("t1"))
    [stored] = await dead_lettered(bus, 1)
    listener.fixed = True

    status, output = await dlq(bus, "replay", str(stored.sequence))
    assert status == 0 and "replayed to ticketing.ticket.created.v1" in output
    await wait_until(lambda: listener.handled, timeout=10, message="replay not handled")
    await bus.wait_consumer_idle(DURABLE)
    assert await bus.dead_letters() == []

    status, output = await dlq(bus, "replay", str(stored.sequence))
    assert status == 1 and "no such dead letter" in output
    await bus.wait_consumer_idle(DURABLE)
    assert listener.handled == ["t1"]
    # The recorder is a consumer of its own: it may see the replay after the listener did.
    await bus.wait_for(TicketCreated, count=2)
    # The same event (same envelope id) as the original, on its original subject.
    assert [env.id for env in bus.recorder.envelopes(TicketCreated)] == [envelope.id] * 2


async def test_two_replays_of_one_dead_letter_at_once_publish_it_once(
    bus: TestBus, listener: BrokenUntilFixed
) -> None:
    await bus.publish(ticket("t1"))
    [stored] = await dead_lettered(bus, 1)
    listener.fixed = True

    done = await asyncio.gather(replay(bus.js, stored), replay(bus.js, stored))

    assert sorted(done) == [False, True]  # one removed the record; the other found it gone
    await wait_until(lambda: listener.handled, timeout=10, message="replay not handled")
    await bus.wait_consumer_idle(DURABLE)
    assert listener.handled == ["t1"]
    # The recorder is a consumer of its own: it may see the replay after the listener did.
    await bus.wait_for(TicketCreated, count=2)
    assert len(bus.recorder.envelopes(TicketCreated)) == 2  # the original and one replay


async def test_replay_all_and_discard(bus: TestBus, listener: BrokenUntilFixed) -> None:
    for number in range(3):
        await bus.publish(ticket(f"t{number}"))
    first, second, third = await dead_lettered(bus, 3)

    status, output = await dlq(bus, "discard", str(first.sequence))
    assert status == 0 and "discarded" in output
    assert [s.sequence for s in await bus.dead_letters()] == [second.sequence, third.sequence]

    listener.fixed = True
    assert (await dlq(bus, "replay", "--all"))[0] == 0
    await wait_until(lambda: len(listener.handled) == 2, timeout=10, message="not all replayed")
    assert sorted(listener.handled) == ["t1", "t2"]
    assert await bus.dead_letters() == []
    assert (await dlq(bus, "replay"))[0] == 2  # neither numbers nor --all


async def test_an_unreachable_nats_is_said_plainly_without_the_password() -> None:
    out = io.StringIO()

    status = await run(["list"], nats_url="nats://admin:secret@127.0.0.1:9", out=out)

    assert status == 2
    assert "cannot reach NATS at 127.0.0.1:9" in out.getvalue()
    assert "secret" not in out.getvalue()
