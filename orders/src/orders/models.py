"""orders' request and response bodies."""

from typing import Any

from bson import ObjectId
from common.events import OrderStatus
from common.types import CamelModel, Price, UtcDateTime, cents_to_price
from pydantic import field_validator


class OrderBody(CamelModel):
    """What a buyer sends to reserve a ticket."""

    ticket_id: str

    @field_validator("ticket_id")
    @classmethod
    def _ticket_id(cls, value: str) -> str:
        if not ObjectId.is_valid(value):
            raise ValueError("ticketId must be a valid id")
        return value


class OrderTicketOut(CamelModel):
    """The ticket as the order saw it when it was placed."""

    id: str
    title: str
    price: Price


class OrderOut(CamelModel):
    id: str
    status: OrderStatus
    expires_at: UtcDateTime
    user_id: str
    ticket: OrderTicketOut
    version: int

    @classmethod
    def from_document(cls, order: dict[str, Any]) -> "OrderOut":
        return cls(
            id=str(order["_id"]),
            status=order["status"],
            expires_at=order["expires_at"],
            user_id=order["user_id"],
            ticket=OrderTicketOut(
                id=str(order["ticket_id"]),
                title=order["ticket"]["title"],
                price=cents_to_price(order["ticket"]["price_cents"]),
            ),
            version=order["version"],
        )
