"""What orders publishes and the listeners it runs: its CONTRACT (the event catalog reads it)."""

from common.contract import ServiceContract
from common.events import OrderCancelled, OrderCreated, OrderUpdated

from orders.listeners import (
    ChargeCreatedListener,
    ChargeUpdatedListener,
    ChargeUpdatedV2Listener,
    OrderExpiredListener,
    TicketCreatedListener,
    TicketUpdatedListener,
)

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
        ChargeUpdatedV2Listener,
    ),
)
