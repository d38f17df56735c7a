"""tickets' business rules: who may edit a ticket and when, how orders reserve, release and buy
one (whatever order their events arrive in), and the event each change announces. Routes and
listeners both call these; none of them knows HTTP or the bus.
"""

from dataclasses import dataclass
from decimal import Decimal

from bson import ObjectId
from common.domain_errors import Forbidden, InvalidState, NotFound
from common.events import TicketCreated, TicketUpdated
from common.mongo import Database, parse_object_id
from common.outbox import Outbox
from common.pagination import Page, Position
from common.types import cents_to_price, price_to_cents, utc_now

from tickets import repository
from tickets.models import TicketChanges, TicketDocument

# --- selling -------------------------------------------------------------------------------------


async def create_ticket(
    db: Database, outbox: Outbox, *, title: str, price: Decimal, user_id: str
) -> TicketDocument:
    """A ticket at version 0, announced by TicketCreated in the same write."""
    ticket_id = ObjectId()
    ticket: TicketDocument = {
        "_id": ticket_id,
        "title": title,
        "price_cents": price_to_cents(price),
        "user_id": user_id,
        "order_id": None,
        "version": 0,
        "created_at": utc_now(),
        "released_order_ids": [],
    }
    event = TicketCreated(id=str(ticket_id), version=0, title=title, price=price, user_id=user_id)
    return await repository.insert_ticket(db, outbox, ticket, event)


async def list_for_sale(db: Database, *, limit: int, after: Position | None) -> Page:
    """A page of the tickets nobody has reserved, newest first."""
    return await repository.list_available(db, limit=limit, after=after)


async def list_own(db: Database, *, user_id: str, limit: int, after: Position | None) -> Page:
    """A page of the seller's own tickets, for sale, reserved or sold, newest first."""
    return await repository.list_owned(db, user_id=user_id, limit=limit, after=after)


async def show_ticket(db: Database, *, ticket_id: ObjectId) -> TicketDocument:
    ticket = await repository.find_ticket(db, ticket_id=ticket_id)
    if ticket is None:
        raise NotFound("Ticket not found")
    return ticket


async def save_change(
    db: Database,
    outbox: Outbox,
    ticket: TicketDocument,
    changes: TicketChanges,
    *,
    unless_released: str | None = None,
    note_released: str | None = None,
) -> TicketDocument | None:
    """`changes` as the version after the one `ticket` was read at, announced by TicketUpdated
    (the whole ticket as it then is) in the same write; None when someone changed the ticket in
    between (the caller re-reads and decides again). The two order ids as in
    repository.save_ticket_change."""
    after: TicketDocument = {**ticket, **changes}
    event = TicketUpdated(
        id=str(ticket["_id"]),
        version=ticket["version"] + 1,
        title=after["title"],
        price=cents_to_price(after["price_cents"]),
        user_id=after["user_id"],
        order_id=after["order_id"],
    )
    return await repository.save_ticket_change(
        db,
        outbox,
        ticket,
        changes,
        event,
        unless_released=unless_released,
        note_released=note_released,
    )


async def edit_ticket(
    db: Database, outbox: Outbox, *, ticket_id: ObjectId, user_id: str, title: str, price: Decimal
) -> TicketDocument:
    """The owner's edit of an unreserved ticket: 404 unknown, 403 someone else's, 400 reserved;
    checked again on every retry after a conflict, so a reservation that lands in between is
    never overwritten."""
    while True:
        ticket = await repository.find_ticket(db, ticket_id=ticket_id)
        if ticket is None:
            raise NotFound("Ticket not found")
        if ticket["user_id"] != user_id:
            raise Forbidden("Only the ticket's owner can edit it")
        if ticket["order_id"] is not None:
            raise InvalidState("Cannot edit a reserved ticket")
        changes: TicketChanges = {"title": title, "price_cents": price_to_cents(price)}
        updated = await save_change(db, outbox, ticket, changes)
        if updated is not None:
            return updated


# --- reservations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """An order's event that cannot be applied yet, and what it waits for."""

    reason: str


async def reserve_ticket(
    db: Database, outbox: Outbox, ticket: TicketDocument, *, order_id: str
) -> TicketDocument | None:
    """Set the order holding the ticket, unless that order was meanwhile noted as released;
    None when the write did not happen (the caller re-reads and decides again)."""
    return await save_change(db, outbox, ticket, {"order_id": order_id}, unless_released=order_id)


async def release_ticket(
    db: Database, outbox: Outbox, ticket: TicketDocument, *, order_id: str
) -> TicketDocument | None:
    """Clear the order holding the ticket and note it as released, so a late copy of its
    OrderCreated cannot lock the ticket again; None when the ticket changed in between."""
    return await save_change(db, outbox, ticket, {"order_id": None}, note_released=order_id)


async def reserve_for_order(
    db: Database, outbox: Outbox, *, ticket_id: str, order_id: str
) -> Pending | None:
    """An order reserves its ticket (version + 1, TicketUpdated). Nothing to do when it holds
    it already or was cancelled before this arrived; Pending while the ticket is unknown or
    still held by another order."""
    parsed_id = parse_object_id(ticket_id)
    while True:
        ticket = await repository.find_ticket(db, ticket_id=parsed_id)
        if ticket is None:
            return Pending(f"ticket {ticket_id} is unknown")
        if ticket["order_id"] == order_id or order_id in ticket.get("released_order_ids", []):
            return None  # already applied, or the order was cancelled before this arrived
        if ticket["order_id"] is not None:
            # Orders holds at most one active order per ticket, so the previous holder's
            # OrderCancelled is still on its way.
            return Pending(f"ticket {ticket_id} still held by {ticket['order_id']}")
        if await reserve_ticket(db, outbox, ticket, order_id=order_id) is not None:
            return None


async def release_for_order(
    db: Database, outbox: Outbox, *, ticket_id: str, order_id: str
) -> Pending | None:
    """A cancelled order releases its ticket, only if the ticket still points at that order;
    Pending while the ticket is unknown."""
    parsed_id = parse_object_id(ticket_id)
    while True:
        ticket = await repository.find_ticket(db, ticket_id=parsed_id)
        if ticket is None:
            return Pending(f"ticket {ticket_id} is unknown")
        if ticket.get("sold", False) and ticket["order_id"] == order_id:
            # Orders never cancels a completed order; the sale stands whatever this says.
            return None
        if ticket["order_id"] != order_id:
            # Already released, or its OrderCreated has not arrived yet: remember the order
            # so that OrderCreated, if it comes, does not lock the ticket again.
            if await repository.remember_released_order(db, ticket_id=parsed_id, order_id=order_id):
                return None
            continue  # the order took the ticket meanwhile: release it
        if await release_ticket(db, outbox, ticket, order_id=order_id) is not None:
            return None


async def sell_to_order(db: Database, *, order_id: str) -> Pending | None:
    """A paid (completed) order's ticket is sold: it stays reserved by that order for good and
    is shown as sold to its seller. Nothing to do when already marked; Pending while no ticket
    is held by the order (its OrderCreated, or the previous holder's OrderCancelled, is still
    on its way). Announces nothing: TicketUpdated's fields, orderId included, do not change."""
    while True:
        ticket = await repository.find_ticket_held_by(db, order_id=order_id)
        if ticket is None:
            # A completed order is never cancelled, so its reservation is still to come.
            return Pending(f"no ticket is held by order {order_id} yet")
        if ticket.get("sold", False):
            return None
        if await repository.mark_sold(db, ticket_id=ticket["_id"], order_id=order_id):
            return None
