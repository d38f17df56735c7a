"""What orders publishes, and its listeners: the tickets replica, expiry and the charge outcome."""

import logging

from common.contract import ServiceContract
from common.events import (
    ChargeCreated,
    ChargeUpdated,
    Envelope,
    OrderCancelled,
    OrderCreated,
    OrderExpired,
    OrderUpdated,
    TicketCreated,
    TicketUpdated,
)
from common.messaging import Listener, RetryLater
from common.mongo import parse_object_id

from orders import repository
from orders.runtime import OrdersRuntime

log = logging.getLogger("orders.events")


class TicketCreatedListener(Listener[TicketCreated, OrdersRuntime]):
    """A new ticket joins the replica at version 0 (a repeat is acked and dropped)."""

    event = TicketCreated

    async def handle(self, event: TicketCreated, envelope: Envelope) -> None:
        await repository.insert_ticket(self.runtime.db, event)


class TicketUpdatedListener(Listener[TicketUpdated, OrdersRuntime]):
    """A ticket change applies only on top of its previous version; one that is ahead waits."""

    event = TicketUpdated

    async def handle(self, event: TicketUpdated, envelope: Envelope) -> None:
        outcome = await repository.update_ticket(self.runtime.db, event)
        if outcome in (repository.ReplicaOutcome.AHEAD, repository.ReplicaOutcome.UNKNOWN):
            raise RetryLater(f"ticket {event.id} v{event.version} not applicable: {outcome.value}")


def _log_unknown(event_type: str, order_id: str) -> None:
    # Orders writes an order before any event about it exists, so this is not a race: drop it.
    log.warning(
        "event dropped: %s for unknown order %s",
        event_type,
        order_id,
        extra={"fields": {"order_id": order_id, "type": event_type, "outcome": "dropped"}},
    )


class OrderExpiredListener(Listener[OrderExpired, OrdersRuntime]):
    """The lock ran out: cancel the order unless it is completed (or already cancelled)."""

    event = OrderExpired

    async def handle(self, event: OrderExpired, envelope: Envelope) -> None:
        change = await repository.cancel_unless_completed(
            self.runtime.db, self.runtime.outbox, order_id=parse_object_id(event.order_id)
        )
        if change is repository.Change.UNKNOWN:
            _log_unknown(envelope.type, event.order_id)


class ChargeCreatedListener(Listener[ChargeCreated, OrdersRuntime]):
    """A charge attempt started: a created order is now awaiting payment."""

    event = ChargeCreated

    async def handle(self, event: ChargeCreated, envelope: Envelope) -> None:
        change = await repository.advance(
            self.runtime.db,
            self.runtime.outbox,
            order_id=parse_object_id(event.order_id),
            to="awaiting_payment",
            allowed_from=("created",),
        )
        if change is repository.Change.UNKNOWN:
            _log_unknown(envelope.type, event.order_id)


class ChargeUpdatedListener(Listener[ChargeUpdated, OrdersRuntime]):
    """A charge's outcome: completed completes the order; failed cancels it unless completed.

    A refund (stripeRefundId set) is money going back for an order that already ended
    cancelled, so it changes nothing here.
    """

    event = ChargeUpdated

    async def handle(self, event: ChargeUpdated, envelope: Envelope) -> None:
        if event.stripe_refund_id is not None or event.status == "created":
            return
        order_id = parse_object_id(event.order_id)
        if event.status == "completed":
            # Straight from created too: the ChargeCreated may not have arrived yet.
            change = await repository.advance(
                self.runtime.db,
                self.runtime.outbox,
                order_id=order_id,
                to="completed",
                allowed_from=("created", "awaiting_payment"),
            )
        else:
            change = await repository.cancel_unless_completed(
                self.runtime.db, self.runtime.outbox, order_id=order_id
            )
        if change is repository.Change.UNKNOWN:
            _log_unknown(envelope.type, event.order_id)


CONTRACT = ServiceContract(
    name="orders",
    description=(
        "Orders and the ticket lock (one active order per ticket); keeps a replica of tickets."
    ),
    publishes=(OrderCreated, OrderUpdated, OrderCancelled),
    listeners=(
        TicketCreatedListener,
        TicketUpdatedListener,
        OrderExpiredListener,
        ChargeCreatedListener,
        ChargeUpdatedListener,
    ),
)
