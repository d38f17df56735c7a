"""What expiration publishes and the listeners it runs: its CONTRACT (the catalog reads it)."""

from common.contract import ServiceContract
from common.events import OrderExpired

from expiration.listeners import (
    OrderCancelledListener,
    OrderCreatedListener,
    OrderUpdatedListener,
)

CONTRACT = ServiceContract(
    name="expiration",
    description="Durable order-expiry timers: OrderExpired when an order's lock runs out.",
    publishes=(OrderExpired,),
    listeners=(OrderCreatedListener, OrderCancelledListener, OrderUpdatedListener),
)
