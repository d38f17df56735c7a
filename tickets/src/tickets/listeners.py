"""tickets' listeners: orders reserving and releasing tickets, each handed to the service layer;
an event that cannot apply yet is retried later."""

from common.events import Envelope, OrderCancelled, OrderCreated
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
