"""tickets' storage: tickets with their pending events, changed only on top of the version read.

Prices are stored as integer cents. Every change bumps `version` by exactly one and appends the
event announcing it to the ticket's outbox in the same single-document write.
"""

from decimal import Decimal
from typing import Any

from bson import ObjectId
from common.domain_errors import Forbidden, InvalidState, NotFound
from common.events import TicketCreated, TicketUpdated
from common.mongo import Database
from common.outbox import Outbox
from common.snapshot import Snapshot, read_collection
from common.types import cents_to_price, price_to_cents, utc_now
from pymongo import ReturnDocument

TICKETS = "tickets"


async def create_indexes(db: Database) -> None:
    # The listing: unreserved tickets, newest first.
    await db[TICKETS].create_index([("order_id", 1), ("created_at", -1), ("_id", -1)])


async def create_ticket(
    db: Database, outbox: Outbox, *, title: str, price: Decimal, user_id: str
) -> dict[str, Any]:
    """Insert a ticket at version 0 together with its TicketCreated event."""
    ticket_id = ObjectId()
    event = TicketCreated(id=str(ticket_id), version=0, title=title, price=price, user_id=user_id)
    document: dict[str, Any] = {
        "_id": ticket_id,
        "title": title,
        "price_cents": price_to_cents(price),
        "user_id": user_id,
        "order_id": None,
        "version": 0,
        "created_at": utc_now(),
        "released_order_ids": [],
    }
    return await outbox.insert_one(db[TICKETS], document, event)


async def find_ticket(db: Database, *, ticket_id: ObjectId) -> dict[str, Any] | None:
    return await db[TICKETS].find_one({"_id": ticket_id}, {"outbox": 0})


async def list_available(db: Database) -> list[dict[str, Any]]:
    """Tickets nobody has reserved, newest first."""
    cursor = (
        db[TICKETS].find({"order_id": None}, {"outbox": 0}).sort([("created_at", -1), ("_id", -1)])
    )
    return [ticket async for ticket in cursor]


async def save_change(
    db: Database,
    outbox: Outbox,
    ticket: dict[str, Any],
    changes: dict[str, Any],
    *,
    also: dict[str, Any] | None = None,
    only_if: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Write `changes` on top of the version `ticket` was read at, as version + 1, with its
    TicketUpdated in the same write. `also` adds update operators that are bookkeeping only;
    `only_if` adds conditions on fields that change without a new version.

    None when someone changed the ticket in between: the caller re-reads and decides again.
    """
    version = ticket["version"] + 1
    state = {**ticket, **changes}
    event = TicketUpdated(
        id=str(ticket["_id"]),
        version=version,
        title=state["title"],
        price=cents_to_price(state["price_cents"]),
        user_id=state["user_id"],
        order_id=state["order_id"],
    )
    update: dict[str, Any] = {
        **(also or {}),
        "$set": {**changes, "version": version},
    }
    saved: dict[str, Any] | None = await outbox.find_one_and_update(
        db[TICKETS],
        {**(only_if or {}), "_id": ticket["_id"], "version": ticket["version"]},
        update,
        event,
        projection={"outbox": 0},
        return_document=ReturnDocument.AFTER,
    )
    return saved


async def edit_ticket(
    db: Database, outbox: Outbox, *, ticket_id: ObjectId, user_id: str, title: str, price: Decimal
) -> dict[str, Any]:
    """The owner's edit of an unreserved ticket; checked again on every retry after a conflict,
    so a reservation that lands in between is never overwritten."""
    while True:
        ticket = await find_ticket(db, ticket_id=ticket_id)
        if ticket is None:
            raise NotFound("Ticket not found")
        if ticket["user_id"] != user_id:
            raise Forbidden("Only the ticket's owner can edit it")
        if ticket["order_id"] is not None:
            raise InvalidState("Cannot edit a reserved ticket")
        changes = {"title": title, "price_cents": price_to_cents(price)}
        updated = await save_change(db, outbox, ticket, changes)
        if updated is not None:
            return updated


async def reserve_ticket(
    db: Database, outbox: Outbox, ticket: dict[str, Any], *, order_id: str
) -> dict[str, Any] | None:
    """Set the order holding the ticket, unless that order was meanwhile noted as released;
    None when the write did not happen (the caller re-reads and decides again)."""
    return await save_change(
        db,
        outbox,
        ticket,
        {"order_id": order_id},
        only_if={"released_order_ids": {"$ne": order_id}},
    )


async def release_ticket(
    db: Database, outbox: Outbox, ticket: dict[str, Any], *, order_id: str
) -> dict[str, Any] | None:
    """Clear the order holding the ticket and note it as released, so a late copy of its
    OrderCreated cannot lock the ticket again; None when the ticket changed in between."""
    return await save_change(
        db, outbox, ticket, {"order_id": None}, also={"$addToSet": {"released_order_ids": order_id}}
    )


async def remember_released_order(db: Database, *, ticket_id: ObjectId, order_id: str) -> bool:
    """Note a cancelled order that does not hold the ticket, so its late OrderCreated is ignored.

    False when the order took the ticket in between (the caller must release it instead). With
    the matching condition in reserve_ticket, one of the two always sees the other's write.
    """
    result = await db[TICKETS].update_one(
        {"_id": ticket_id, "order_id": {"$ne": order_id}},
        {"$addToSet": {"released_order_ids": order_id}},
    )
    return bool(result.matched_count)


async def snapshot(db: Database) -> Snapshot:
    """What `make verify` compares: every ticket, the order holding it, its version."""
    fields = ("title", "price_cents", "user_id", "order_id", "version")
    return {TICKETS: await read_collection(db, TICKETS, fields, count_outbox=True)}
