"""What payments publishes and the listeners it runs: its CONTRACT (the event catalog reads it)."""

from common.contract import ServiceContract
from common.events import ChargeCreated, ChargeUpdated, ChargeUpdatedV2

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
    # ChargeUpdatedV2 (with the dispute) announces a dispute's change; every other change is
    # still v1 until every consumer has a v2 listener deployed (CONTRIBUTING, a new version).
    publishes=(ChargeCreated, ChargeUpdated, ChargeUpdatedV2),
    listeners=(
        OrderCreatedListener,
        OrderUpdatedListener,
        OrderCancelledListener,
        UserCreatedListener,
        UserUpdatedListener,
    ),
)
