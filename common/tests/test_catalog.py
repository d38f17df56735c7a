"""The event catalog generator: AsyncAPI 3.0 and Markdown built from service contracts."""

from decimal import Decimal

from common.catalog import asyncapi, events_markdown
from common.contract import ServiceContract
from common.events import ALL_EVENTS, Envelope, TicketCreated, TicketUpdated
from common.messaging import Listener


class TicketCreatedListener(Listener[TicketCreated, None]):
    event = TicketCreated

    async def handle(self, event: TicketCreated, envelope: Envelope) -> None:
        return None


SELLER = ServiceContract(name="seller", publishes=(TicketCreated, TicketUpdated))
BUYER = ServiceContract(name="buyer", listeners=(TicketCreatedListener,))


def test_asyncapi_lists_every_channel_message_and_who_sends_and_receives() -> None:
    document = asyncapi([SELLER, BUYER])

    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {event.subject for event in ALL_EVENTS}
    operations = document["operations"]
    assert operations["seller-send-TicketCreated"]["action"] == "send"
    assert operations["buyer-receive-TicketCreated"]["action"] == "receive"
    assert "buyer-receive-TicketUpdated" not in operations
    schema = document["components"]["schemas"]["TicketCreated"]
    assert set(schema["properties"]) == {"id", "version", "title", "price", "userId"}


def test_markdown_has_the_flow_and_each_events_fields() -> None:
    page = events_markdown([SELLER, BUYER])

    assert "seller -- TicketCreated --> buyer" in page
    assert "seller -- TicketUpdated --> nobody" in page
    assert "## TicketUpdated" in page
    assert "| `orderId` |" in page


def test_a_service_may_only_put_declared_events_in_its_outbox() -> None:
    event = TicketCreated(id="t", version=0, title="x", price=Decimal("1"), user_id="u")

    assert SELLER.outbox_entry(event)["type"] == "TicketCreated"
    try:
        BUYER.outbox_entry(event)
    except TypeError as error:
        assert "buyer does not declare" in str(error)
    else:
        raise AssertionError("an undeclared event was accepted")
