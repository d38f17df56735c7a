"""tickets' storage: tickets with their pending events, changed only on top of the version read.

Prices are stored as integer cents. Every change bumps `version` by exactly one and appends the
event announcing it to the ticket's outbox in the same single-document write. Two notes are not
changes of what TicketUpdated carries, so neither a version nor an event: an order released
before its reservation arrived, and the ticket sold to the order holding it.
"""

from typing import cast

from bson import ObjectId
from common.events import Event
from common.mongo import Database, Document
from common.outbox import Outbox
from common.pagination import Page, Position, read_page
from common.snapshot import Snapshot, read_collection
from pymongo import ReturnDocument

from tickets.models import TicketChanges, TicketDocument

TICKETS = "tickets"


async def create_indexes(db: Database) -> None:
    # The listing: unreserved tickets, newest first; also finds the ticket an order holds.
    await db[TICKETS].create_index([("order_id", 1), ("created_at", -1), ("_id", -1)])
    await db[TICKETS].create_index([("user_id", 1), ("created_at", -1), ("_id", -1)])


async def insert_ticket(
    db: Database, outbox: Outbox, ticket: TicketDocument, event: Event
) -> TicketDocument:
    """Insert `ticket` with `event` pending, in one write; returns it as stored."""
    return cast(TicketDocument, await outbox.insert_one(db[TICKETS], ticket, event))


async def find_ticket(db: Database, *, ticket_id: ObjectId) -> TicketDocument | None:
    return cast(
        TicketDocument | None, await db[TICKETS].find_one({"_id": ticket_id}, {"outbox": 0})
    )


async def list_available(db: Database, *, limit: int, after: Position | None) -> Page:
    """A page of the tickets nobody has reserved, newest first."""
    return await read_page(
        db[TICKETS], {"order_id": None}, limit=limit, after=after, projection={"outbox": 0}
    )


async def list_owned(db: Database, *, user_id: str, limit: int, after: Position | None) -> Page:
    """A page of a seller's tickets, whatever their state, newest first."""
    return await read_page(
        db[TICKETS], {"user_id": user_id}, limit=limit, after=after, projection={"outbox": 0}
    )


async def save_ticket_change(
    db: Database,
    outbox: Outbox,
    ticket: TicketDocument,
    changes: TicketChanges,
    event: Event,
    *,
    unless_released: str | None = None,
    note_released: str | None = None,
) -> TicketDocument | None:
    """Write `changes` on top of the version `ticket` was read at, as version + 1, with `event`
    pending in the same write. `unless_released`: only if that order is not noted as released;
    `note_released`: note that order as released in the same write (neither is a new version).
    Never on a sold ticket.

    None when someone changed the ticket in between: the caller re-reads and decides again.
    """
    # Marking a ticket sold is not a new version (mark_sold), so the version alone would not
    # stop a change read before it.
    condition: Document = {
        "_id": ticket["_id"],
        "version": ticket["version"],
        "sold": {"$ne": True},
    }
    if unless_released is not None:
        condition["released_order_ids"] = {"$ne": unless_released}
    update: Document = {"$set": {**changes, "version": ticket["version"] + 1}}
    if note_released is not None:
        update["$addToSet"] = {"released_order_ids": note_released}
    saved = await outbox.find_one_and_update(
        db[TICKETS],
        condition,
        update,
        event,
        projection={"outbox": 0},
        return_document=ReturnDocument.AFTER,
    )
    return cast(TicketDocument | None, saved)


async def remember_released_order(db: Database, *, ticket_id: ObjectId, order_id: str) -> bool:
    """Note a released order on a ticket that order does not hold.

    False when the order took the ticket in between (the caller must release it instead). With
    `unless_released` on the reservation's write, one of the two always sees the other's
    write.
    """
    result = await db[TICKETS].update_one(
        {"_id": ticket_id, "order_id": {"$ne": order_id}},
        {"$addToSet": {"released_order_ids": order_id}},
    )
    return bool(result.matched_count)


async def find_ticket_held_by(db: Database, *, order_id: str) -> TicketDocument | None:
    """The ticket `order_id` holds, if its reservation has been applied here."""
    return cast(
        TicketDocument | None, await db[TICKETS].find_one({"order_id": order_id}, {"outbox": 0})
    )


async def mark_sold(db: Database, *, ticket_id: ObjectId, order_id: str) -> bool:
    """Mark the ticket sold to the order holding it. Not a new version and no event: nothing
    TicketUpdated carries changes (the ticket keeps its orderId).

    False when `order_id` no longer holds the ticket (the caller re-reads).
    """
    result = await db[TICKETS].update_one(
        {"_id": ticket_id, "order_id": order_id}, {"$set": {"sold": True}}
    )
    return bool(result.matched_count)


async def snapshot(db: Database) -> Snapshot:
    """What `make verify` compares: every ticket, the order holding it, whether it is sold, its
    version."""
    fields = ("title", "price_cents", "user_id", "order_id", "sold", "version")
    return {TICKETS: await read_collection(db, TICKETS, fields, count_outbox=True)}
