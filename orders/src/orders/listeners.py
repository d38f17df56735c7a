"""orders' listeners: the tickets replica, expiry and the charge outcome, each handed to the
service layer; an event about an order orders has never written is dropped with a log line."""

import logging

from common.events import (
    ChargeCreated,
    ChargeUpdated,
    ChargeUpdatedV2,
    Envelope,
    OrderExpired,
    TicketCreated,
    TicketUpdated,
)
from common.messaging import Listener, RetryLater
from common.metrics import EVENTS_DROPPED

from orders import service
from orders.runtime import OrdersRuntime

log = logging.getLogger("orders.listeners")


class TicketCreatedListener(Listener[TicketCreated, OrdersRuntime]):
    """A new ticket joins the replica at version 0 (a repeat is acked and dropped)."""

    event = TicketCreated

    async def handle(self, event: TicketCreated, envelope: Envelope) -> None:
        await service.add_to_replica(self.runtime.db, event)


class TicketUpdatedListener(Listener[TicketUpdated, OrdersRuntime]):
    """A ticket change applies only on top of its previous version; one that is ahead waits."""

    event = TicketUpdated

    async def handle(self, event: TicketUpdated, envelope: Envelope) -> None:
        outcome = await service.update_replica(self.runtime.db, event)
        if outcome in (service.ReplicaOutcome.AHEAD, service.ReplicaOutcome.UNKNOWN):
            raise RetryLater(f"ticket {event.id} v{event.version} not applicable: {outcome.value}")


def _log_if_unknown(change: service.Change, event_type: str, order_id: str) -> None:
    if change is not service.Change.UNKNOWN:
        return
    # Orders writes an order before any event about it exists, so this is not a race: drop it.
    EVENTS_DROPPED.labels(event_type).inc()
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
        change = await service.expire_order(
            self.runtime.db, self.runtime.outbox, order_id=event.order_id
        )
        _log_if_unknown(change, envelope.type, event.order_id)


class ChargeCreatedListener(Listener[ChargeCreated, OrdersRuntime]):
    """A charge attempt started: a created order is now awaiting payment."""

    event = ChargeCreated

    async def handle(self, event: ChargeCreated, envelope: Envelope) -> None:
        change = await service.start_payment(
            self.runtime.db, self.runtime.outbox, order_id=event.order_id
        )
        _log_if_unknown(change, envelope.type, event.order_id)


class ChargeUpdatedListener(Listener[ChargeUpdated, OrdersRuntime]):
    """A charge's outcome: completed completes the order; failed cancels it unless completed;
    a refund (stripeRefundId set) changes nothing."""

    event = ChargeUpdated

    async def handle(self, event: ChargeUpdated, envelope: Envelope) -> None:
        await _settle_payment(self.runtime, event, envelope)


class ChargeUpdatedV2Listener(Listener[ChargeUpdatedV2, OrdersRuntime]):
    """ChargeUpdated v2 (with the charge's dispute), handled as v1: a dispute changes no order."""

    event = ChargeUpdatedV2

    async def handle(self, event: ChargeUpdatedV2, envelope: Envelope) -> None:
        await _settle_payment(self.runtime, event, envelope)


async def _settle_payment(
    runtime: OrdersRuntime, event: ChargeUpdated | ChargeUpdatedV2, envelope: Envelope
) -> None:
    change = await service.settle_payment(
        runtime.db,
        runtime.outbox,
        order_id=event.order_id,
        status=event.status,
        refunded=event.stripe_refund_id is not None,
    )
    _log_if_unknown(change, envelope.type, event.order_id)
