"""What tickets publishes, and its listeners: orders reserving and releasing tickets."""

from common.contract import ServiceContract
from common.events import Envelope, OrderCancelled, OrderCreated, TicketCreated, TicketUpdated
from common.messaging import Listener, RetryLater
from common.mongo import parse_object_id

from tickets import repository
from tickets.runtime import TicketsRuntime


class OrderCreatedListener(Listener[OrderCreated, TicketsRuntime]):
    """An order reserves its ticket: set orderId (version + 1, TicketUpdated)."""

    event = OrderCreated

    async def handle(self, event: OrderCreated, envelope: Envelope) -> None:
        db = self.runtime.db
        ticket_id = parse_object_id(event.ticket.id)
        while True:
            ticket = await repository.find_ticket(db, ticket_id=ticket_id)
            if ticket is None:
                raise RetryLater(f"ticket {event.ticket.id} is unknown")
            if ticket["order_id"] == event.id or event.id in ticket.get("released_order_ids", []):
                return  # already applied, or the order was cancelled before this arrived
            if ticket["order_id"] is not None:
                # Orders holds at most one active order per ticket, so the previous holder's
                # OrderCancelled is still on its way.
                raise RetryLater(f"ticket {event.ticket.id} still held by {ticket['order_id']}")
            if (
                await repository.reserve_ticket(db, self.runtime.outbox, ticket, order_id=event.id)
                is not None
            ):
                return


class OrderCancelledListener(Listener[OrderCancelled, TicketsRuntime]):
    """A cancelled order releases its ticket, only if the ticket still points at that order."""

    event = OrderCancelled

    async def handle(self, event: OrderCancelled, envelope: Envelope) -> None:
        db = self.runtime.db
        ticket_id = parse_object_id(event.ticket.id)
        while True:
            ticket = await repository.find_ticket(db, ticket_id=ticket_id)
            if ticket is None:
                raise RetryLater(f"ticket {event.ticket.id} is unknown")
            if ticket["order_id"] != event.id:
                # Already released, or its OrderCreated has not arrived yet: remember the order
                # so that OrderCreated, if it comes, does not lock the ticket again.
                if await repository.remember_released_order(
                    db, ticket_id=ticket_id, order_id=event.id
                ):
                    return
                continue  # the order took the ticket meanwhile: release it
            if (
                await repository.release_ticket(db, self.runtime.outbox, ticket, order_id=event.id)
                is not None
            ):
                return


CONTRACT = ServiceContract(
    name="tickets",
    description="Tickets for sale; the orderId marks a ticket reserved or sold.",
    publishes=(TicketCreated, TicketUpdated),
    listeners=(OrderCreatedListener, OrderCancelledListener),
)
