"""tickets' request and response bodies."""

from decimal import Decimal
from typing import Any

from common.types import CamelModel, Price, cents_to_price
from pydantic import field_validator

TITLE_MAX_LENGTH = 120
# What Stripe can charge in USD: a ticket priced outside this range could never be paid for.
PRICE_MIN = Decimal("0.50")
PRICE_MAX = Decimal("999999.99")


class TicketBody(CamelModel):
    """What a seller sends to create or edit a ticket."""

    title: str
    price: Price

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("Title is required")
        if len(value) > TITLE_MAX_LENGTH:
            raise ValueError(f"Title must be at most {TITLE_MAX_LENGTH} characters")
        return value

    @field_validator("price")
    @classmethod
    def _price(cls, value: Decimal) -> Decimal:
        if not PRICE_MIN <= value <= PRICE_MAX:
            raise ValueError(f"Price must be between ${PRICE_MIN} and ${PRICE_MAX:,}")
        return value


class TicketOut(CamelModel):
    """A ticket as the API shows it; orderId is set while it is reserved or sold."""

    id: str
    title: str
    price: Price
    user_id: str
    order_id: str | None
    version: int

    @classmethod
    def from_document(cls, ticket: dict[str, Any]) -> "TicketOut":
        return cls(
            id=str(ticket["_id"]),
            title=ticket["title"],
            price=cents_to_price(ticket["price_cents"]),
            user_id=ticket["user_id"],
            order_id=ticket["order_id"],
            version=ticket["version"],
        )
