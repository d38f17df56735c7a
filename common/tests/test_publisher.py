"""The publisher: events reach the stream once, Nats-Msg-Id = event id, after the ack."""

from decimal import Decimal

from common.events import Envelope, TicketCreated
from common.messaging import STREAM_NAME, Publisher
from gittix_testing import TestBus


def ticket_created(version: int = 0) -> TicketCreated:
    return TicketCreated(
        id="t1", version=version, title="Concert", price=Decimal("20.50"), user_id="u1"
    )


async def test_published_event_is_stored_with_its_id_as_message_id(bus: TestBus) -> None:
    envelope = await Publisher(bus.js).publish(ticket_created())

    stored = await bus.js.get_msg(STREAM_NAME, seq=1)
    assert stored.subject == "ticketing.ticket.created.v1"
    assert stored.headers is not None and stored.headers["Nats-Msg-Id"] == envelope.id
    received = await bus.wait_for(TicketCreated, id="t1")
    assert received.price == Decimal("20.50")


async def test_republishing_the_same_event_is_dropped_by_the_stream(bus: TestBus) -> None:
    envelope = Envelope.wrap(ticket_created())
    publisher = Publisher(bus.js)

    assert await publisher.publish_envelope(envelope) is True
    assert await publisher.publish_envelope(envelope) is False

    info = await bus.js.stream_info(STREAM_NAME)
    assert info.state.messages == 1
