"""payments' request and response bodies, and the documents it stores."""

from datetime import datetime
from typing import NotRequired, TypedDict

from bson import ObjectId
from common.events import ChargeStatus, OrderStatus
from common.mongo import Document
from common.types import CamelModel
from pydantic import BaseModel, ConfigDict, Field

# --- stored documents ----------------------------------------------------------------------------


class OrderReplica(TypedDict):
    """An order as payments knows it from orders' events (collection `orders`)."""

    _id: str
    status: OrderStatus
    user_id: str
    ticket_id: str
    amount: int  # cents
    version: int


class UserReplica(TypedDict):
    """A user as payments knows it from auth's events (collection `users`): the receipt email."""

    _id: str
    email: str
    version: int


class ChargeDocument(TypedDict):
    """One attempt to charge an order (collection `charges`).

    `live` is set while the charge is `created` or `completed` (the unique index allows one live
    charge per order); `attempt_until` is the lease of whoever works on a `created` charge;
    `refund_due` flags a completed charge whose order ended cancelled.
    """

    _id: ObjectId
    order_id: str
    user_id: str
    status: ChargeStatus
    live: NotRequired[bool]
    amount: int  # cents
    token: str
    receipt_email: str | None
    stripe_id: str | None
    stripe_refund_id: str | None
    version: int
    created_at: datetime
    attempt_until: NotRequired[datetime]
    failure: NotRequired[str]
    refund_due: NotRequired[bool]
    # Events written but not yet published (common.outbox); reads leave it out.
    outbox: NotRequired[list[Document]]


# --- HTTP bodies ---------------------------------------------------------------------------------


class PaymentBody(CamelModel):
    # Documented as it is checked (an ObjectId), so the OpenAPI promises no more.
    order_id: str = Field(min_length=1, json_schema_extra={"pattern": "^[0-9a-fA-F]{24}$"})
    # A Stripe PaymentMethod id, e.g. pm_card_visa in test mode.
    token: str = Field(min_length=1, max_length=255)


class ChargeOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
