"""payments' request and response bodies, and the documents it stores."""

from datetime import datetime
from typing import Literal, NotRequired, TypedDict

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


class DisputeDocument(TypedDict):
    """A dispute (chargeback) of a charge as Stripe's latest event about it described it."""

    id: str
    status: str  # Stripe's: warning_needs_response, needs_response, under_review, won, lost, ...
    reason: str | None
    amount: int  # cents
    event_created: int  # the event's time (Unix seconds): an older event never overwrites it


class StripeEventDocument(TypedDict):
    """A webhook event already applied (collection `stripe_events`): redeliveries are dropped."""

    _id: str  # Stripe's event id
    type: str
    received_at: datetime


class ChargeDocument(TypedDict):
    """One attempt to charge an order (collection `charges`).

    `live` is set while the charge is `created` or `completed` (the unique index allows one live
    charge per order); `attempt_until` is the lease of whoever works on a `created` charge;
    `refund_due` flags a completed charge whose order ended cancelled. `intent_id` is the
    PaymentIntent as soon as Stripe created it (before it is confirmed), so an unresolved attempt
    is looked up at Stripe rather than made again; `stripe_id` is announced once it completes.
    `dispute` is the latest state of a chargeback, from Stripe's webhook events.
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
    intent_id: NotRequired[str]
    dispute: NotRequired[DisputeDocument]
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
    # Only on a 202: the payment waits for the buyer (3-D Secure) or for Stripe (processing).
    status: Literal["requires_action", "processing"] | None = None
    # What Stripe.js needs to run the 3-D Secure challenge (requires_action only).
    client_secret: str | None = Field(default=None, serialization_alias="clientSecret")
    payment_intent_id: str | None = Field(default=None, serialization_alias="paymentIntentId")


class WebhookOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    received: bool
