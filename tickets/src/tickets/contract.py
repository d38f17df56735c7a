"""What tickets publishes and the listeners it runs: its CONTRACT (the event catalog reads it)."""

from common.contract import ServiceContract
from common.events import TicketCreated, TicketUpdated

from tickets.listeners import OrderCancelledListener, OrderCreatedListener, OrderUpdatedListener

CONTRACT = ServiceContract(
    name="tickets",
    description=(
        "Tickets for sale; the orderId marks a ticket reserved or sold (its order completed)."
    ),
    publishes=(TicketCreated, TicketUpdated),
    listeners=(OrderCreatedListener, OrderCancelledListener, OrderUpdatedListener),
)
