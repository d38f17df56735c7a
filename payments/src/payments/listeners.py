"""payments' listeners: the orders and users replicas and cancelled orders, each handed to the
service layer; an event whose predecessor has not been applied yet is retried later."""

from common.events import (
    Envelope,
    OrderCancelled,
    OrderCreated,
    OrderUpdated,
    UserCreated,
    UserUpdated,
)
from common.messaging import Listener, RetryLater

from payments import service
from payments.runtime import PaymentsRuntime


def _retry_if_early(outcome: service.ReplicaOutcome, what: str, version: int) -> None:
    if outcome.applicable_later:
        raise RetryLater(f"{what} v{version} not applicable: {outcome.value}")


class OrderCreatedListener(Listener[OrderCreated, PaymentsRuntime]):
    """A new order joins the replica (a repeat is acked and dropped)."""

    event = OrderCreated

    async def handle(self, event: OrderCreated, envelope: Envelope) -> None:
        await service.add_order(self.runtime.db, event)


class OrderUpdatedListener(Listener[OrderUpdated, PaymentsRuntime]):
    """An order's new status applies only on top of its previous version; one ahead waits."""

    event = OrderUpdated

    async def handle(self, event: OrderUpdated, envelope: Envelope) -> None:
        outcome = await service.update_order_status(
            self.runtime.db, order_id=event.id, version=event.version, status=event.status
        )
        _retry_if_early(outcome, f"order {event.id}", event.version)


class OrderCancelledListener(Listener[OrderCancelled, PaymentsRuntime]):
    """The replica records the cancellation; money already taken for the order is refunded."""

    event = OrderCancelled

    async def handle(self, event: OrderCancelled, envelope: Envelope) -> None:
        outcome = await service.cancel_order(self.runtime, order_id=event.id, version=event.version)
        _retry_if_early(outcome, f"order {event.id}", event.version)


class UserCreatedListener(Listener[UserCreated, PaymentsRuntime]):
    """A new user joins the replica (a repeat is acked and dropped)."""

    event = UserCreated

    async def handle(self, event: UserCreated, envelope: Envelope) -> None:
        await service.add_user(self.runtime.db, event)


class UserUpdatedListener(Listener[UserUpdated, PaymentsRuntime]):
    """A user's new email applies only on top of its previous version; one ahead waits."""

    event = UserUpdated

    async def handle(self, event: UserUpdated, envelope: Envelope) -> None:
        outcome = await service.update_user_email(
            self.runtime.db, user_id=event.id, version=event.version, email=event.email
        )
        _retry_if_early(outcome, f"user {event.id}", event.version)
