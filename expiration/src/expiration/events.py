"""What expiration consumes (the order lifecycle) and publishes (OrderExpired)."""

from common.contract import ServiceContract
from common.events import Envelope, OrderCancelled, OrderCreated, OrderExpired, OrderUpdated
from common.messaging import Listener

from expiration import repository
from expiration.runtime import ExpirationRuntime


class OrderCreatedListener(Listener[OrderCreated, ExpirationRuntime]):
    """Arrange OrderExpired at the order's expiresAt."""

    event = OrderCreated

    async def handle(self, event: OrderCreated, envelope: Envelope) -> None:
        if event.status != "created":  # only a fresh lock expires
            return
        if await repository.schedule(self.runtime.db, order_id=event.id, due_at=event.expires_at):
            # The new timer may be due before the one the scheduler is sleeping towards.
            self.runtime.scheduler_wake.set()


class OrderCancelledListener(Listener[OrderCancelled, ExpirationRuntime]):
    """A cancelled order needs no expiry."""

    event = OrderCancelled

    async def handle(self, event: OrderCancelled, envelope: Envelope) -> None:
        await repository.drop(self.runtime.db, order_id=event.id, reason="cancelled")


class OrderUpdatedListener(Listener[OrderUpdated, ExpirationRuntime]):
    """A completed order never expires; other status changes leave the timer as it is."""

    event = OrderUpdated

    async def handle(self, event: OrderUpdated, envelope: Envelope) -> None:
        if event.status == "completed":
            await repository.drop(self.runtime.db, order_id=event.id, reason="completed")


CONTRACT = ServiceContract(
    name="expiration",
    description="Durable order-expiry timers: OrderExpired when an order's lock runs out.",
    publishes=(OrderExpired,),
    listeners=(OrderCreatedListener, OrderCancelledListener, OrderUpdatedListener),
)
