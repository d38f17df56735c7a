"""orders' business rules: placing an order within the buyer's limits, the order's life (created,
awaiting payment, completed or cancelled), the tickets replica, and the events each change
announces. Routes and listeners both call these; none of them knows HTTP or the bus.
"""

from datetime import datetime, timedelta
from enum import Enum

from bson import ObjectId
from common.domain_errors import Conflict, Forbidden, Invalid, InvalidState, NotFound
from common.events import (
    ChargeStatus,
    OrderCancelled,
    OrderCreated,
    OrderStatus,
    OrderUpdated,
    TicketCreated,
    TicketPriceRef,
    TicketRef,
    TicketUpdated,
)
from common.mongo import Database, parse_object_id
from common.outbox import Outbox
from common.pagination import Page, Position
from common.types import ceil_to_millisecond, cents_to_price, price_to_cents, utc_now

from orders import buyer_limits, repository
from orders.models import OrderChanges, OrderDocument, TicketReplica
from orders.settings import Settings

# Statuses in which an order holds its ticket (`active` is true exactly for these).
ACTIVE_STATUSES: tuple[OrderStatus, ...] = ("created", "awaiting_payment", "completed")
ALREADY_RESERVED = "Ticket is already reserved"


# --- the tickets replica -------------------------------------------------------------------------


class ReplicaOutcome(Enum):
    APPLIED = "applied"
    ALREADY_APPLIED = "already applied"
    AHEAD = "ahead"  # its predecessor has not been applied yet
    UNKNOWN = "unknown"  # no TicketCreated yet


def _replica(event: TicketCreated | TicketUpdated, *, order_id: str | None) -> TicketReplica:
    return {
        "_id": ObjectId(event.id),
        "title": event.title,
        "price_cents": price_to_cents(event.price),
        "user_id": event.user_id,
        "order_id": order_id,
        "version": event.version,
    }


async def add_to_replica(db: Database, event: TicketCreated) -> ReplicaOutcome:
    """A new ticket joins the replica at its first version; a repeat is already applied."""
    if await repository.insert_ticket(db, _replica(event, order_id=None)):
        return ReplicaOutcome.APPLIED
    return ReplicaOutcome.ALREADY_APPLIED


async def update_replica(db: Database, event: TicketUpdated) -> ReplicaOutcome:
    """Apply version N only on top of version N-1."""
    if await repository.write_ticket_version(db, _replica(event, order_id=event.order_id)):
        return ReplicaOutcome.APPLIED
    current = await repository.ticket_version(db, ticket_id=ObjectId(event.id))
    if current is None:
        return ReplicaOutcome.UNKNOWN
    if current >= event.version:
        return ReplicaOutcome.ALREADY_APPLIED
    return ReplicaOutcome.AHEAD


# --- placing an order ----------------------------------------------------------------------------


async def place_order(
    db: Database, outbox: Outbox, settings: Settings, *, ticket_id: ObjectId, user_id: str
) -> OrderDocument:
    """A buyer reserves a ticket: counted against the rate limit, refused for an unknown ticket
    (404), the buyer's own (400) or past the limit on unpaid orders (400), locked for
    ORDER_EXPIRATION_SECONDS."""
    await buyer_limits.count_reserve_attempt(db, settings, user_id=user_id)
    ticket = await repository.find_ticket(db, ticket_id=ticket_id)
    if ticket is None:
        raise NotFound("Ticket not found")
    buyer_limits.refuse_own_ticket(ticket, user_id=user_id)
    # Up to a whole millisecond: what is stored, returned and published is then the same
    # instant, and never earlier than the full lock.
    expires_at = ceil_to_millisecond(
        utc_now() + timedelta(seconds=settings.order_expiration_seconds)
    )
    return await create_order_within_limit(
        db,
        outbox,
        ticket=ticket,
        user_id=user_id,
        expires_at=expires_at,
        limit=settings.orders_max_active_per_user,
    )


async def create_order_within_limit(
    db: Database,
    outbox: Outbox,
    *,
    ticket: TicketReplica,
    user_id: str,
    expires_at: datetime,
    limit: int,
) -> OrderDocument:
    """Create the order in a free slot of the buyer's `limit`; 400 when all are held.

    Simultaneous requests from one buyer may read the same free slot; the unique index lets one
    of them have it and the others look again, so the limit holds however the requests interleave.
    Each lost race means another of the buyer's orders took a slot, so `limit` + 1 looks suffice
    unless the buyer is also freeing slots at that moment; then the answer is the same 400.
    """
    for _ in range(limit + 1):
        slot = buyer_limits.free_slot(
            await repository.taken_slots(db, user_id=user_id), limit=limit
        )
        if slot is None:
            break
        try:
            return await create_order(
                db, outbox, ticket=ticket, user_id=user_id, expires_at=expires_at, slot=slot
            )
        except repository.SlotTaken:
            continue
    raise Invalid(buyer_limits.too_many_unpaid(limit))


async def create_order(
    db: Database,
    outbox: Outbox,
    *,
    ticket: TicketReplica,
    user_id: str,
    expires_at: datetime,
    slot: int,
) -> OrderDocument:
    """An order holding `ticket` and the buyer's `slot`, announced by OrderCreated in one write.

    400 "Ticket is already reserved" when another active order holds the ticket, however many
    buyers try at the same moment; repository.SlotTaken when the slot is no longer free.
    """
    order_id = ObjectId()
    order: OrderDocument = {
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
    event = OrderCreated(
        id=str(order_id),
        version=0,
        status="created",
        user_id=user_id,
        expires_at=expires_at,
        ticket=TicketPriceRef(id=str(ticket["_id"]), price=cents_to_price(ticket["price_cents"])),
    )
    try:
        return await repository.insert_order(db, outbox, order, event)
    except repository.TicketHeld:
        raise Conflict(ALREADY_RESERVED) from None


# --- reading orders ------------------------------------------------------------------------------


async def list_orders(db: Database, *, user_id: str, limit: int, after: Position | None) -> Page:
    """A page of a buyer's orders, newest first."""
    return await repository.list_orders(db, user_id=user_id, limit=limit, after=after)


async def show_order(db: Database, *, order_id: ObjectId, user_id: str) -> OrderDocument:
    """The buyer's own order: 404 unknown, 403 someone else's."""
    order = await repository.find_order(db, order_id=order_id)
    if order is None:
        raise NotFound("Order not found")
    if order["user_id"] != user_id:
        raise Forbidden("This order belongs to someone else")
    return order


# --- an order's life -----------------------------------------------------------------------------


class Change(Enum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"  # already in that state, or a state it must not leave
    UNKNOWN = "unknown"  # no such order


async def _cancel(db: Database, outbox: Outbox, order: OrderDocument) -> OrderDocument | None:
    """Cancel and release the lock and the buyer's slot in the same write, announcing
    OrderCancelled; None when the order changed since it was read."""
    event = OrderCancelled(
        id=str(order["_id"]),
        version=order["version"] + 1,
        ticket=TicketRef(id=str(order["ticket_id"])),
    )
    changes: OrderChanges = {"status": "cancelled", "active": False, "holds_slot": False}
    return await repository.save_order_change(db, outbox, order, changes, event)


async def _set_status(
    db: Database, outbox: Outbox, order: OrderDocument, status: OrderStatus
) -> OrderDocument | None:
    """Move an order on (awaiting_payment, completed), announcing OrderUpdated; None when the
    order changed since it was read."""
    assert status in ACTIVE_STATUSES
    event = OrderUpdated(id=str(order["_id"]), version=order["version"] + 1, status=status)
    changes: OrderChanges = {"status": status}
    if status == "completed":
        changes["holds_slot"] = False  # paid for: no longer held without paying
    return await repository.save_order_change(db, outbox, order, changes, event)


async def cancel_by_buyer(
    db: Database, outbox: Outbox, *, order_id: ObjectId, user_id: str
) -> Change:
    """The buyer cancels: 404 unknown, 403 someone else's, 400 completed; a cancelled order
    stays as it is (cancelling twice is harmless and announces nothing new)."""
    while True:
        order = await repository.find_order(db, order_id=order_id)
        if order is None:
            raise NotFound("Order not found")
        if order["user_id"] != user_id:
            raise Forbidden("This order belongs to someone else")
        if order["status"] == "completed":
            raise InvalidState("Cannot cancel a completed order")
        if order["status"] == "cancelled":
            return Change.UNCHANGED
        if await _cancel(db, outbox, order) is not None:
            return Change.CHANGED


async def cancel_unless_completed(db: Database, outbox: Outbox, *, order_id: ObjectId) -> Change:
    """Cancel (expiry, failed charge); a completed order is never cancelled."""
    while True:
        order = await repository.find_order(db, order_id=order_id)
        if order is None:
            return Change.UNKNOWN
        if order["status"] in ("completed", "cancelled"):
            return Change.UNCHANGED
        if await _cancel(db, outbox, order) is not None:
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
        order = await repository.find_order(db, order_id=order_id)
        if order is None:
            return Change.UNKNOWN
        if order["status"] not in allowed_from:
            return Change.UNCHANGED
        if await _set_status(db, outbox, order, to) is not None:
            return Change.CHANGED


async def expire_order(db: Database, outbox: Outbox, *, order_id: str) -> Change:
    """The lock ran out: cancel the order unless it is completed (or already cancelled)."""
    return await cancel_unless_completed(db, outbox, order_id=parse_object_id(order_id))


async def start_payment(db: Database, outbox: Outbox, *, order_id: str) -> Change:
    """A charge attempt started: a created order is now awaiting payment."""
    return await advance(
        db,
        outbox,
        order_id=parse_object_id(order_id),
        to="awaiting_payment",
        allowed_from=("created",),
    )


async def settle_payment(
    db: Database, outbox: Outbox, *, order_id: str, status: ChargeStatus, refunded: bool
) -> Change:
    """A charge's outcome: completed completes the order; failed cancels it unless completed.

    A refund is money going back for an order that already ended cancelled, so it changes
    nothing here (nor does a charge still `created`).
    """
    if refunded or status == "created":
        return Change.UNCHANGED
    parsed_id = parse_object_id(order_id)
    if status == "completed":
        # Straight from created too: the ChargeCreated may not have arrived yet.
        return await advance(
            db,
            outbox,
            order_id=parsed_id,
            to="completed",
            allowed_from=("created", "awaiting_payment"),
        )
    return await cancel_unless_completed(db, outbox, order_id=parsed_id)
