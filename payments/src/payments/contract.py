"""What payments publishes and the listeners it runs: its CONTRACT (the event catalog reads it)."""

from common.contract import ServiceContract
from common.events import ChargeCreated, ChargeUpdated

from payments.listeners import (
    OrderCancelledListener,
    OrderCreatedListener,
    OrderUpdatedListener,
    UserCreatedListener,
    UserUpdatedListener,
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
