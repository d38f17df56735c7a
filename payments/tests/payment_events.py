"""Events payments' tests publish as orders and auth would, and waiting until they are handled."""

from decimal import Decimal
from typing import Any

from bson import ObjectId
from common.events import OrderCancelled, OrderCreated, OrderUpdated, TicketPriceRef, TicketRef
from common.types import utc_now
from gittix_testing import TestBus

BUYER_ID = "5f1f1f1f1f1f1f1f1f1f1f1f"
BUYER_EMAIL = "buyer@example.com"


def order_created(
    *, user_id: str = BUYER_ID, price: str = "25.50", order_id: str | None = None
) -> OrderCreated:
    return OrderCreated(
        id=order_id or str(ObjectId()),
        version=0,
        status="created",
        user_id=user_id,
        expires_at=utc_now(),
        ticket=TicketPriceRef(id=str(ObjectId()), price=Decimal(price)),
    )


def expired_while_paying(order: Any) -> tuple[OrderUpdated, OrderCancelled]:
    """What orders publishes when the expiry wins over the charge's outcome."""
    return (
        OrderUpdated(id=order.id, version=1, status="awaiting_payment"),
        OrderCancelled(id=order.id, version=2, ticket=TicketRef(id=order.ticket.id)),
    )


async def publish_and_settle(bus: TestBus, *events: Any) -> None:
    """Publish events and wait until payments' consumers have handled all of them."""
    for event in events:
        await bus.publish(event)
    for name in {
        "payments-" + event.subject.removeprefix("ticketing.").replace(".", "-") for event in events
    }:
        await bus.wait_consumer_idle(name)
