"""What payments consumes (orders and users, for its replicas) and publishes (charges)."""

from common.contract import ServiceContract
from common.events import (
    ChargeCreated,
    ChargeUpdated,
    Envelope,
    OrderCancelled,
    OrderCreated,
    OrderUpdated,
    UserCreated,
    UserUpdated,
)
from common.messaging import Listener

from payments import charging, repository
from payments.runtime import PaymentsRuntime


class OrderCreatedListener(Listener[OrderCreated, PaymentsRuntime]):
    event = OrderCreated

    async def handle(self, event: OrderCreated, envelope: Envelope) -> None:
        await repository.insert_order(self.runtime.db, event)


class OrderUpdatedListener(Listener[OrderUpdated, PaymentsRuntime]):
    event = OrderUpdated

    async def handle(self, event: OrderUpdated, envelope: Envelope) -> None:
        await repository.apply_order_status(
            self.runtime.db, order_id=event.id, version=event.version, status=event.status
        )


class OrderCancelledListener(Listener[OrderCancelled, PaymentsRuntime]):
    """The replica records the cancellation; money already taken for the order is refunded."""

    event = OrderCancelled

    async def handle(self, event: OrderCancelled, envelope: Envelope) -> None:
        await repository.apply_order_status(
            self.runtime.db, order_id=event.id, version=event.version, status="cancelled"
        )
        # Also on a redelivery. A refund Stripe cannot take now is left to the sweeper.
        await charging.settle_cancelled_order(self.runtime, order_id=event.id)


class UserCreatedListener(Listener[UserCreated, PaymentsRuntime]):
    event = UserCreated

    async def handle(self, event: UserCreated, envelope: Envelope) -> None:
        await repository.insert_user(
            self.runtime.db, user_id=event.id, email=event.email, version=event.version
        )


class UserUpdatedListener(Listener[UserUpdated, PaymentsRuntime]):
    event = UserUpdated

    async def handle(self, event: UserUpdated, envelope: Envelope) -> None:
        await repository.apply_user(
            self.runtime.db, user_id=event.id, email=event.email, version=event.version
        )


CONTRACT = ServiceContract(
    name="payments",
    description="Charges orders through Stripe; refunds money taken for cancelled orders.",
    publishes=(ChargeCreated, ChargeUpdated),
    listeners=(
        OrderCreatedListener,
        OrderUpdatedListener,
        OrderCancelledListener,
        UserCreatedListener,
        UserUpdatedListener,
    ),
)
