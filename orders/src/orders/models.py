"""orders' request and response bodies, and the documents it stores."""

from datetime import datetime
from typing import NotRequired, TypedDict

from bson import ObjectId
from common.events import OrderStatus
from common.mongo import Document
from common.types import CamelModel, Price, UtcDateTime, cents_to_price
from pydantic import Field, field_validator

# --- stored documents ----------------------------------------------------------------------------


class TicketReplica(TypedDict):
    """A ticket as orders knows it from TicketCreated / TicketUpdated (collection `tickets`)."""

    _id: ObjectId
    title: str
    price_cents: int
    user_id: str
    order_id: str | None
    version: int


class OrderedTicket(TypedDict):
    """The ticket as the order saw it when it was placed: later edits do not change an order."""

    title: str
    price_cents: int


class OrderDocument(TypedDict):
    """An order (collection `orders`).

    `active` is true while the order holds its ticket (the unique lock index covers only those);
    `holds_slot` while it holds one of the buyer's `buyer_slot`s (unpaid and not cancelled).
    """

    _id: ObjectId
    user_id: str
    status: OrderStatus
    active: bool
    ticket_id: ObjectId
    ticket: OrderedTicket
    buyer_slot: int
    holds_slot: bool
    expires_at: datetime
    version: int
    created_at: datetime
    # Events written but not yet published (common.outbox); reads leave it out.
    outbox: NotRequired[list[Document]]


class OrderChanges(TypedDict, total=False):
    """The fields an order's change may set (its version is bumped by the repository)."""

    status: OrderStatus
    active: bool
    holds_slot: bool


# --- HTTP bodies ---------------------------------------------------------------------------------


class OrderBody(CamelModel):
    """What a buyer sends to reserve a ticket."""

    # Documented as the validator checks it (an ObjectId), so the OpenAPI promises no more.
    ticket_id: str = Field(json_schema_extra={"pattern": "^[0-9a-fA-F]{24}$"})

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
    def from_document(cls, order: OrderDocument) -> "OrderOut":
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
