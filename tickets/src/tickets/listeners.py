"""tickets' listeners: orders reserving, releasing and buying tickets, each handed to the service
layer; an event that cannot apply yet is retried later."""

from common.events import Envelope, OrderCancelled, OrderCreated, OrderUpdated
from common.messaging import Listener, RetryLater

from tickets import service
from tickets.runtime import TicketsRuntime


class OrderCreatedListener(Listener[OrderCreated, TicketsRuntime]):
    """An order reserves its ticket: set orderId (version + 1, TicketUpdated)."""

    event = OrderCreated

    async def handle(self, event: OrderCreated, envelope: Envelope) -> None:
        pending = await service.reserve_for_order(
            self.runtime.db, self.runtime.outbox, ticket_id=event.ticket.id, order_id=event.id
        )
        if pending is not None:
            raise RetryLater(pending.reason)


class OrderCancelledListener(Listener[OrderCancelled, TicketsRuntime]):
    """A cancelled order releases its ticket, only if the ticket still points at that order."""

    event = OrderCancelled

    async def handle(self, event: OrderCancelled, envelope: Envelope) -> None:
        pending = await service.release_for_order(
            self.runtime.db, self.runtime.outbox, ticket_id=event.ticket.id, order_id=event.id
        )
        if pending is not None:
            raise RetryLater(pending.reason)


class OrderUpdatedListener(Listener[OrderUpdated, TicketsRuntime]):
    """A completed order's ticket is sold (no new version, no event); awaiting_payment changes
    nothing here."""

    event = OrderUpdated

    async def handle(self, event: OrderUpdated, envelope: Envelope) -> None:
        if event.status != "completed":
            return
        pending = await service.sell_to_order(self.runtime.db, order_id=event.id)
        if pending is not None:
            raise RetryLater(pending.reason)
