"""expiration's stored documents: one timer per order (it has no HTTP bodies)."""

from datetime import datetime
from typing import Literal, NotRequired, TypedDict

from common.mongo import Document

# pending: waiting for its due time; fired: OrderExpired is in its outbox or published;
# dropped: the order was cancelled or completed first.
TimerState = Literal["pending", "fired", "dropped"]
DropReason = Literal["cancelled", "completed"]


class TimerDocument(TypedDict):
    """An order's expiry timer (collection `expirations`), keyed by the order id.

    A fired or dropped timer stays as a tombstone for a retention, so a late or repeated
    OrderCreated cannot bring it back; one dropped before its OrderCreated arrived has no due
    time.
    """

    _id: str
    state: TimerState
    due_at: NotRequired[datetime]
    created_at: NotRequired[datetime]
    # The W3C trace context (traceparent, tracestate) of the OrderCreated handling that armed it.
    trace: NotRequired[dict[str, str]]
    fired_at: NotRequired[datetime]
    # When it fired or was dropped: the tombstone goes TOMBSTONE_RETENTION later (TTL index).
    ended_at: NotRequired[datetime]
    dropped_because: NotRequired[DropReason]
    # Events written but not yet published (common.outbox).
    outbox: NotRequired[list[Document]]
