"""orders' storage: orders (with their pending events) and the replica of tickets.

The lock is the unique partial index on `ticket_id` over active orders: the database, not a
read in Python, decides which of several simultaneous buyers gets a ticket. Every order change
bumps `version` by exactly one and appends its event in the same single-document write.

A buyer's unpaid orders each hold one of the buyer's numbered slots (`buyer_slot`, unique per
buyer while `holds_slot`), so the database also decides when simultaneous requests from one
buyer would pass their limit; paying, cancelling or expiring frees the slot in the same write.
"""

from typing import cast

from bson import ObjectId
from common.events import Event
from common.mongo import Database, Document
from common.outbox import Outbox
from common.pagination import Page, Position, read_page
from common.rate_limit import create_rate_limit_indexes
from common.snapshot import Snapshot, read_collection
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from orders.models import OrderChanges, OrderDocument, TicketReplica

ORDERS = "orders"
TICKETS = "tickets"  # the replica, fed by TicketCreated / TicketUpdated


async def create_indexes(db: Database) -> None:
    await db[ORDERS].create_index(
        "ticket_id",
        name="one_active_order_per_ticket",
        unique=True,
        partialFilterExpression={"active": True},
    )
    await db[ORDERS].create_index([("user_id", 1), ("created_at", -1), ("_id", -1)])
    await db[ORDERS].create_index(
        [("user_id", 1), ("buyer_slot", 1)],
        name="one_unpaid_order_per_buyer_slot",
        unique=True,
        partialFilterExpression={"holds_slot": True},
    )
    await create_rate_limit_indexes(db)


# --- the tickets replica -------------------------------------------------------------------------


async def insert_ticket(db: Database, ticket: TicketReplica) -> bool:
    """Add a ticket to the replica; False when it is there already."""
    try:
        await db[TICKETS].insert_one(cast(Document, ticket))
    except DuplicateKeyError:
        return False
    return True


async def write_ticket_version(db: Database, ticket: TicketReplica) -> bool:
    """Write `ticket` (at its version N) only over version N-1; False when that is not stored."""
    result = await db[TICKETS].update_one(
        {"_id": ticket["_id"], "version": ticket["version"] - 1},
        {
            "$set": {
                "title": ticket["title"],
                "price_cents": ticket["price_cents"],
                "user_id": ticket["user_id"],
                "version": ticket["version"],
                "order_id": ticket["order_id"],
            }
        },
    )
    return result.matched_count == 1


async def ticket_version(db: Database, *, ticket_id: ObjectId) -> int | None:
    """The replica's version of a ticket; None when it has not got the ticket."""
    current = await db[TICKETS].find_one({"_id": ticket_id}, {"version": 1})
    return None if current is None else int(current["version"])


async def find_ticket(db: Database, *, ticket_id: ObjectId) -> TicketReplica | None:
    return cast(TicketReplica | None, await db[TICKETS].find_one({"_id": ticket_id}))


# --- orders --------------------------------------------------------------------------------------


class TicketHeld(Exception):
    """Another active order holds the ticket: the lock index refused the order."""


class SlotTaken(Exception):
    """Another order of the same buyer took that slot since the buyer's slots were read."""


async def taken_slots(db: Database, *, user_id: str) -> set[int]:
    """The slots the buyer's unpaid orders hold."""
    cursor = db[ORDERS].find({"user_id": user_id, "holds_slot": True}, {"buyer_slot": 1})
    return {order["buyer_slot"] async for order in cursor}


async def insert_order(
    db: Database, outbox: Outbox, order: OrderDocument, event: Event
) -> OrderDocument:
    """Insert `order` with `event` pending, in one write; returns it as stored.

    TicketHeld when an active order holds its ticket (one buyer wins, however many try at the
    same moment); SlotTaken when its buyer's slot is no longer free (the ticket was not the
    reason).
    """
    try:
        stored = await outbox.insert_one(db[ORDERS], order, event)
    except DuplicateKeyError:
        # Either index may have refused it; the ticket's holder, if any, says which one.
        if await db[ORDERS].find_one({"ticket_id": order["ticket_id"], "active": True}, {"_id": 1}):
            raise TicketHeld from None
        raise SlotTaken from None
    return cast(OrderDocument, stored)


async def find_order(db: Database, *, order_id: ObjectId) -> OrderDocument | None:
    return cast(OrderDocument | None, await db[ORDERS].find_one({"_id": order_id}, {"outbox": 0}))


async def list_orders(db: Database, *, user_id: str, limit: int, after: Position | None) -> Page:
    """A page of a buyer's orders, newest first."""
    return await read_page(
        db[ORDERS], {"user_id": user_id}, limit=limit, after=after, projection={"outbox": 0}
    )


async def save_order_change(
    db: Database, outbox: Outbox, order: OrderDocument, changes: OrderChanges, event: Event
) -> OrderDocument | None:
    """Write `changes` as version + 1 on top of the version `order` was read at, with `event`
    pending, in one write; None when the order changed in between (the caller re-reads and
    decides again)."""
    saved = await outbox.find_one_and_update(
        db[ORDERS],
        {"_id": order["_id"], "version": order["version"]},
        {"$set": {**changes, "version": order["version"] + 1}},
        event,
        projection={"outbox": 0},
        return_document=ReturnDocument.AFTER,
    )
    return cast(OrderDocument | None, saved)


async def snapshot(db: Database) -> Snapshot:
    """What `make verify` compares: the orders (the source) and the tickets replica."""
    order_fields = ("user_id", "status", "active", "ticket_id", "ticket", "expires_at", "version")
    replica_fields = ("title", "price_cents", "user_id", "order_id", "version")
    return {
        ORDERS: await read_collection(db, ORDERS, order_fields, count_outbox=True),
        TICKETS: await read_collection(db, TICKETS, replica_fields),
    }
