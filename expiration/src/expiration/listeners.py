"""expiration's listeners: the order lifecycle, each event handed to the service layer."""

from common.events import Envelope, OrderCancelled, OrderCreated, OrderUpdated
from common.messaging import Listener

from expiration import service
from expiration.runtime import ExpirationRuntime


class OrderCreatedListener(Listener[OrderCreated, ExpirationRuntime]):
    """Arrange OrderExpired at the order's expiresAt."""

    event = OrderCreated

    async def handle(self, event: OrderCreated, envelope: Envelope) -> None:
        await service.schedule_expiry(
            self.runtime, order_id=event.id, status=event.status, expires_at=event.expires_at
        )


class OrderCancelledListener(Listener[OrderCancelled, ExpirationRuntime]):
    """A cancelled order needs no expiry."""

    event = OrderCancelled

    async def handle(self, event: OrderCancelled, envelope: Envelope) -> None:
        await service.drop_expiry(self.runtime.db, order_id=event.id, reason="cancelled")


class OrderUpdatedListener(Listener[OrderUpdated, ExpirationRuntime]):
    """A completed order never expires; other status changes leave the timer as it is."""

    event = OrderUpdated

    async def handle(self, event: OrderUpdated, envelope: Envelope) -> None:
        await service.order_status_changed(self.runtime.db, order_id=event.id, status=event.status)
