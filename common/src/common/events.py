"""Every event contract of the system: one pydantic model per event, its subject and version."""

import json
import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.types import CamelModel, Price, UtcDateTime, utc_now

# Every subject starts with it; the stream, durable names and the catalog are built from it.
SUBJECT_PREFIX = "ticketing"


class Event(CamelModel):
    """Base of every event payload (`data` in the envelope)."""

    subject: ClassVar[str]
    schema_version: ClassVar[int] = 1
    summary: ClassVar[str]

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__


class TicketRef(CamelModel):
    id: str


class TicketPriceRef(CamelModel):
    id: str
    price: Price


class UserCreated(Event):
    subject = "ticketing.user.created.v1"
    summary = "A user signed up."
    id: str
    email: str
    version: int


class UserUpdated(Event):
    subject = "ticketing.user.updated.v1"
    summary = "A user changed (for example their password); carries the new version."
    id: str
    email: str
    version: int


class TicketCreated(Event):
    subject = "ticketing.ticket.created.v1"
    summary = "A ticket was put up for sale."
    id: str
    version: int
    title: str
    price: Price
    user_id: str


class TicketUpdated(Event):
    subject = "ticketing.ticket.updated.v1"
    summary = "A ticket changed: title/price edited, or reserved/unreserved (orderId)."
    id: str
    version: int
    title: str
    price: Price
    user_id: str
    order_id: str | None


OrderStatus = Literal["created", "awaiting_payment", "completed", "cancelled"]


class OrderCreated(Event):
    subject = "ticketing.order.created.v1"
    summary = "A buyer reserved a ticket; the lock lasts until expiresAt."
    id: str
    version: int
    status: OrderStatus
    user_id: str
    expires_at: UtcDateTime
    ticket: TicketPriceRef


class OrderUpdated(Event):
    subject = "ticketing.order.updated.v1"
    summary = (
        "An order's status moved on (awaiting_payment or completed); "
        "cancellation is OrderCancelled."
    )
    id: str
    version: int
    status: OrderStatus


class OrderCancelled(Event):
    subject = "ticketing.order.cancelled.v1"
    summary = (
        "An order was cancelled (by the buyer, by expiry or by a failed charge); "
        "the ticket unlocks."
    )
    id: str
    version: int
    ticket: TicketRef


class OrderExpired(Event):
    subject = "ticketing.order.expired.v1"
    summary = "An order's lock time ran out."
    order_id: str


ChargeStatus = Literal["created", "failed", "completed"]


class ChargeCreated(Event):
    subject = "ticketing.charge.created.v1"
    summary = "A charge attempt for an order started."
    id: str
    version: int
    order_id: str
    status: Literal["created"]
    amount: int = Field(ge=0, description="integer cents")


class ChargeUpdated(Event):
    subject = "ticketing.charge.updated.v1"
    summary = "A charge attempt's outcome (completed or failed), or a refund of it."
    id: str
    version: int
    order_id: str
    status: ChargeStatus
    amount: int = Field(ge=0, description="integer cents")
    stripe_id: str | None
    stripe_refund_id: str | None


class ChargeDispute(CamelModel):
    id: str
    status: str = Field(
        description="Stripe's dispute status: warning_needs_response, warning_under_review, "
        "warning_closed, needs_response, under_review, won or lost"
    )
    reason: str | None
    amount: int = Field(ge=0, description="integer cents")


class ChargeUpdatedV2(Event):
    subject = "ticketing.charge.updated.v2"
    schema_version = 2
    summary = (
        "ChargeUpdated with the charge's dispute (chargeback, from Stripe's webhook) or null; "
        "payments announces a dispute's change in it (CONTRIBUTING, a new version)."
    )
    id: str
    version: int
    order_id: str
    status: ChargeStatus
    amount: int = Field(ge=0, description="integer cents")
    stripe_id: str | None
    stripe_refund_id: str | None
    dispute: ChargeDispute | None


# Every event class above, in the order declared: a new class is in it with no list to update.
ALL_EVENTS: tuple[type[Event], ...] = tuple(
    value
    for value in list(globals().values())
    if isinstance(value, type) and issubclass(value, Event) and value is not Event
)
EVENTS_BY_TYPE: dict[str, type[Event]] = {event.type_name(): event for event in ALL_EVENTS}


class Envelope(BaseModel):
    """What travels on the bus: the event's identity and time around its data."""

    model_config = ConfigDict(extra="forbid")

    id: str
    type: str
    schema_version: int
    occurred_at: UtcDateTime
    data: dict[str, Any]

    @classmethod
    def wrap(cls, event: Event, *, occurred_at: datetime | None = None) -> "Envelope":
        return cls(
            id=uuid.uuid4().hex,
            type=event.type_name(),
            schema_version=event.schema_version,
            occurred_at=occurred_at or utc_now(),
            data=event.model_dump(mode="json"),
        )

    @property
    def subject(self) -> str:
        return event_class(self.type).subject

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class EventParseError(ValueError):
    """The bytes are not a valid envelope for a known event type and version."""


def event_class(type_name: str) -> type[Event]:
    try:
        return EVENTS_BY_TYPE[type_name]
    except KeyError:
        raise EventParseError(f"unknown event type {type_name!r}") from None


def parse_envelope(raw: bytes | str) -> tuple[Envelope, Event]:
    """Parse and strictly validate an envelope and its data; raise EventParseError if invalid."""
    try:
        envelope = Envelope.model_validate_json(raw, strict=True)
    except ValidationError as error:
        raise EventParseError(f"invalid envelope: {error}") from error
    cls = event_class(envelope.type)
    if envelope.schema_version != cls.schema_version:
        raise EventParseError(
            f"{envelope.type} schema_version {envelope.schema_version} is not supported "
            f"(expected {cls.schema_version})"
        )
    try:
        event = cls.model_validate_json(
            json.dumps(envelope.data), strict=True, by_alias=True, by_name=False
        )
    except ValidationError as error:
        raise EventParseError(f"invalid {envelope.type} data: {error}") from error
    return envelope, event
