"""tickets' request and response bodies, and the document it stores."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal, NotRequired, TypedDict

from bson import ObjectId
from common.mongo import Document
from common.types import CamelModel, Price, cents_to_price
from pydantic import Field, WithJsonSchema, field_validator

TITLE_MAX_LENGTH = 120
# What Stripe can charge in USD: a ticket priced outside this range could never be paid for.
PRICE_MIN = Decimal("0.50")
PRICE_MAX = Decimal("999999.99")

# --- the stored document -------------------------------------------------------------------------


class TicketDocument(TypedDict):
    """A ticket (collection `tickets`); `order_id` is set while an order holds it."""

    _id: ObjectId
    title: str
    price_cents: int
    user_id: str
    order_id: str | None
    version: int
    created_at: datetime
    # Orders cancelled before their OrderCreated was applied here: a late OrderCreated of one
    # of them must not lock the ticket again.
    released_order_ids: NotRequired[list[str]]
    # The order holding it was paid for: the ticket never changes again. Absent means not sold.
    sold: NotRequired[bool]
    # Events written but not yet published (common.outbox); reads leave it out.
    outbox: NotRequired[list[Document]]


class TicketChanges(TypedDict, total=False):
    """The fields a ticket's change may set (its version is bumped by the repository)."""

    title: str
    price_cents: int
    order_id: str | None


# --- HTTP bodies ---------------------------------------------------------------------------------


class TicketBody(CamelModel):
    """What a seller sends to create or edit a ticket."""

    # The schema says what the validators below accept, so a client built from the OpenAPI
    # sends nothing they refuse (found by fuzzing it).
    title: str = Field(
        json_schema_extra={"minLength": 1, "maxLength": TITLE_MAX_LENGTH, "pattern": r"\S"}
    )
    price: Annotated[
        Price,
        WithJsonSchema(
            {
                "type": "number",
                "minimum": float(PRICE_MIN),
                "maximum": float(PRICE_MAX),
                "multipleOf": 0.01,
            }
        ),
    ]

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
    def from_document(cls, ticket: TicketDocument) -> "TicketOut":
        return cls(
            id=str(ticket["_id"]),
            title=ticket["title"],
            price=cents_to_price(ticket["price_cents"]),
            user_id=ticket["user_id"],
            order_id=ticket["order_id"],
            version=ticket["version"],
        )


# "reserved": an order holds it, not paid for yet; "sold": that order was paid for.
TicketState = Literal["for sale", "reserved", "sold"]


class OwnTicketOut(TicketOut):
    """A seller's own ticket, with its state; a reserved or sold one stays in the list."""

    state: TicketState

    @classmethod
    def from_own_document(cls, ticket: TicketDocument) -> "OwnTicketOut":
        shown = TicketOut.from_document(ticket).model_dump()
        state: TicketState = "reserved"
        if ticket.get("sold", False):
            state = "sold"
        elif ticket["order_id"] is None:
            state = "for sale"
        return cls(**shown, state=state)
