"""orders' storage: orders (with their pending events) and the replica of tickets.

The lock is the unique partial index on `ticket_id` over active orders: the database, not a
read in Python, decides which of several simultaneous buyers gets a ticket. Every order change
bumps `version` by exactly one and appends its event in the same single-document write.

A buyer's unpaid orders each hold one of the buyer's numbered slots (`buyer_slot`, unique per
buyer while `holds_slot`), so the database also decides when simultaneous requests from one
buyer would pass their limit; paying, cancelling or expiring frees the slot in the same write.
"""

from datetime import datetime
from enum import Enum
from typing import Any

from bson import ObjectId
from common.domain_errors import Conflict, Forbidden, InvalidState, NotFound
from common.events import (
    Event,
    OrderCancelled,
    OrderCreated,
    OrderStatus,
    OrderUpdated,
    TicketCreated,
    TicketPriceRef,
    TicketRef,
    TicketUpdated,
)
from common.mongo import Database
from common.outbox import Outbox
from common.rate_limit import create_rate_limit_indexes
from common.snapshot import Snapshot, read_collection
from common.types import cents_to_price, price_to_cents, utc_now
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

ORDERS = "orders"
TICKETS = "tickets"  # the replica, fed by TicketCreated / TicketUpdated

# Statuses in which an order holds its ticket (`active` is true exactly for these).
ACTIVE_STATUSES: tuple[OrderStatus, ...] = ("created", "awaiting_payment", "completed")
ALREADY_RESERVED = "Ticket is already reserved"


async def create_indexes(db: Database) -> None:
    await db[ORDERS].create_index(
        "ticket_id",
        name="one_active_order_per_ticket",
        unique=True,
        partialFilterExpression={"active": True},
    )
    await db[ORDERS].create_index([("user_id", 1), ("created_at", -1)])
    await db[ORDERS].create_index(
        [("user_id", 1), ("buyer_slot", 1)],
        name="one_unpaid_order_per_buyer_slot",
        unique=True,
        partialFilterExpression={"holds_slot": True},
    )
    await create_rate_limit_indexes(db)


# --- the tickets replica -------------------------------------------------------------------------


class ReplicaOutcome(Enum):
    APPLIED = "applied"
    ALREADY_APPLIED = "already applied"
    AHEAD = "ahead"  # its predecessor has not been applied yet
    UNKNOWN = "unknown"  # no TicketCreated yet


def _replica_fields(event: TicketCreated | TicketUpdated) -> dict[str, Any]:
    return {
        "title": event.title,
        "price_cents": price_to_cents(event.price),
        "user_id": event.user_id,
        "version": event.version,
    }


async def insert_ticket(db: Database, event: TicketCreated) -> ReplicaOutcome:
    """Add a ticket to the replica at its first version; a repeat is already applied."""
    document = {
        "_id": ObjectId(event.id),
        **_replica_fields(event),
        "order_id": None,
    }
    try:
        await db[TICKETS].insert_one(document)
    except DuplicateKeyError:
        return ReplicaOutcome.ALREADY_APPLIED
    return ReplicaOutcome.APPLIED


async def update_ticket(db: Database, event: TicketUpdated) -> ReplicaOutcome:
    """Apply version N only on top of version N-1."""
    ticket_id = ObjectId(event.id)
    result = await db[TICKETS].update_one(
        {"_id": ticket_id, "version": event.version - 1},
        {"$set": {**_replica_fields(event), "order_id": event.order_id}},
    )
    if result.matched_count == 1:
        return ReplicaOutcome.APPLIED
    current = await db[TICKETS].find_one({"_id": ticket_id}, {"version": 1})
    if current is None:
        return ReplicaOutcome.UNKNOWN
    if current["version"] >= event.version:
        return ReplicaOutcome.ALREADY_APPLIED
    return ReplicaOutcome.AHEAD


async def find_ticket(db: Database, *, ticket_id: ObjectId) -> dict[str, Any] | None:
    return await db[TICKETS].find_one({"_id": ticket_id})


# --- orders --------------------------------------------------------------------------------------


class SlotTaken(Exception):
    """Another order of the same buyer took that slot since the buyer's slots were read."""


async def taken_slots(db: Database, *, user_id: str) -> set[int]:
    """The slots the buyer's unpaid orders hold."""
    cursor = db[ORDERS].find({"user_id": user_id, "holds_slot": True}, {"buyer_slot": 1})
    return {order["buyer_slot"] async for order in cursor}


async def create_order(
    db: Database,
    outbox: Outbox,
    *,
    ticket: dict[str, Any],
    user_id: str,
    expires_at: datetime,
    slot: int,
) -> dict[str, Any]:
    """Insert an order holding `ticket` and the buyer's `slot`, with its OrderCreated, in one write.

    The unique index refuses a second active order for the ticket: 400 "Ticket is already
    reserved", however many buyers try at the same moment. SlotTaken when the slot is no longer
    free (the ticket was not the reason).
    """
    order_id = ObjectId()
    event = OrderCreated(
        id=str(order_id),
        version=0,
        status="created",
        user_id=user_id,
        expires_at=expires_at,
        ticket=TicketPriceRef(id=str(ticket["_id"]), price=cents_to_price(ticket["price_cents"])),
    )
    document: dict[str, Any] = {
        "_id": order_id,
        "user_id": user_id,
        "status": "created",
        "active": True,
        "ticket_id": ticket["_id"],
        "ticket": {"title": ticket["title"], "price_cents": ticket["price_cents"]},
        "buyer_slot": slot,
        "holds_slot": True,
        "expires_at": expires_at,
        "version": 0,
        "created_at": utc_now(),
    }
    try:
        return await outbox.insert_one(db[ORDERS], document, event)
    except DuplicateKeyError:
        # Either index may have refused it; the ticket's holder, if any, says which one.
        if await db[ORDERS].find_one({"ticket_id": ticket["_id"], "active": True}, {"_id": 1}):
            raise Conflict(ALREADY_RESERVED) from None
        raise SlotTaken from None


async def find_order(db: Database, *, order_id: ObjectId) -> dict[str, Any] | None:
    return await db[ORDERS].find_one({"_id": order_id}, {"outbox": 0})


async def list_orders(db: Database, *, user_id: str) -> list[dict[str, Any]]:
    """A buyer's orders, newest first."""
    cursor = (
        db[ORDERS].find({"user_id": user_id}, {"outbox": 0}).sort([("created_at", -1), ("_id", -1)])
    )
    return [order async for order in cursor]


async def _save_change(
    db: Database, outbox: Outbox, order: dict[str, Any], changes: dict[str, Any], event: Event
) -> dict[str, Any] | None:
    """Write `changes` as version + 1 on top of the version read, with `event`; None when the
    order changed in between (the caller re-reads and decides again)."""
    saved: dict[str, Any] | None = await outbox.find_one_and_update(
        db[ORDERS],
        {"_id": order["_id"], "version": order["version"]},
        {"$set": {**changes, "version": order["version"] + 1}},
        event,
        projection={"outbox": 0},
        return_document=ReturnDocument.AFTER,
    )
    return saved


async def cancel(db: Database, outbox: Outbox, order: dict[str, Any]) -> dict[str, Any] | None:
    """Cancel and release the lock in the same write, announcing OrderCancelled."""
    event = OrderCancelled(
        id=str(order["_id"]),
        version=order["version"] + 1,
        ticket=TicketRef(id=str(order["ticket_id"])),
    )
    changes = {"status": "cancelled", "active": False, "holds_slot": False}
    return await _save_change(db, outbox, order, changes, event)


async def set_status(
    db: Database, outbox: Outbox, order: dict[str, Any], status: OrderStatus
) -> dict[str, Any] | None:
    """Move an order on (awaiting_payment, completed), announcing OrderUpdated."""
    assert status in ACTIVE_STATUSES
    event = OrderUpdated(id=str(order["_id"]), version=order["version"] + 1, status=status)
    changes: dict[str, Any] = {"status": status}
    if status == "completed":
        changes["holds_slot"] = False  # paid for: no longer held without paying
    return await _save_change(db, outbox, order, changes, event)


class Change(Enum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"  # already in that state, or a state it must not leave
    UNKNOWN = "unknown"  # no such order


async def cancel_by_buyer(
    db: Database, outbox: Outbox, *, order_id: ObjectId, user_id: str
) -> Change:
    """The buyer cancels: 404 unknown, 403 someone else's, 400 completed; a cancelled order
    stays as it is (cancelling twice is harmless and announces nothing new)."""
    while True:
        order = await find_order(db, order_id=order_id)
        if order is None:
            raise NotFound("Order not found")
        if order["user_id"] != user_id:
            raise Forbidden("This order belongs to someone else")
        if order["status"] == "completed":
            raise InvalidState("Cannot cancel a completed order")
        if order["status"] == "cancelled":
            return Change.UNCHANGED
        if await cancel(db, outbox, order) is not None:
            return Change.CHANGED


async def cancel_unless_completed(db: Database, outbox: Outbox, *, order_id: ObjectId) -> Change:
    """Cancel (expiry, failed charge); a completed order is never cancelled."""
    while True:
        order = await find_order(db, order_id=order_id)
        if order is None:
            return Change.UNKNOWN
        if order["status"] in ("completed", "cancelled"):
            return Change.UNCHANGED
        if await cancel(db, outbox, order) is not None:
            return Change.CHANGED


async def advance(
    db: Database,
    outbox: Outbox,
    *,
    order_id: ObjectId,
    to: OrderStatus,
    allowed_from: tuple[OrderStatus, ...],
) -> Change:
    """Move an order to `to` if it is in one of `allowed_from`; otherwise leave it."""
    while True:
        order = await find_order(db, order_id=order_id)
        if order is None:
            return Change.UNKNOWN
        if order["status"] not in allowed_from:
            return Change.UNCHANGED
        if await set_status(db, outbox, order, to) is not None:
            return Change.CHANGED


async def snapshot(db: Database) -> Snapshot:
    """What `make verify` compares: the orders (the source) and the tickets replica."""
    order_fields = ("user_id", "status", "active", "ticket_id", "ticket", "expires_at", "version")
    replica_fields = ("title", "price_cents", "user_id", "order_id", "version")
    return {
        ORDERS: await read_collection(db, ORDERS, order_fields, count_outbox=True),
        TICKETS: await read_collection(db, TICKETS, replica_fields),
    }
