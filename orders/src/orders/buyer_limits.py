"""The rules that keep one buyer from hoarding tickets: not their own, not too many, not too fast.

Each rule is a function on its own, called by the reserve route before (or, for the limit on
unpaid orders, instead of) the plain insert.
"""

from datetime import datetime
from typing import Any

from common.domain_errors import Invalid
from common.mongo import Database
from common.outbox import Outbox
from common.rate_limit import RateLimit

from orders import repository
from orders.settings import Settings

OWN_TICKET = "You cannot order your own ticket"


def too_many_unpaid(limit: int) -> str:
    return (
        f"You already hold {limit} orders waiting for payment. "
        "Pay for or cancel one before reserving another ticket."
    )


def refuse_own_ticket(ticket: dict[str, Any], *, user_id: str) -> None:
    """A seller reserving their own ticket would only take it off sale: 400."""
    if ticket["user_id"] == user_id:
        raise Invalid(OWN_TICKET, field="ticketId")


def reserve_rate_limit(settings: Settings) -> RateLimit:
    return RateLimit(
        "reserve",
        limit=settings.orders_rate_limit,
        window_seconds=settings.orders_rate_window_seconds,
        message="Too many attempts to reserve tickets. Please wait and try again.",
    )


async def count_reserve_attempt(db: Database, settings: Settings, *, user_id: str) -> None:
    """Every attempt counts, refused ones too: a script probing tickets is slowed all the same."""
    await reserve_rate_limit(settings).hit(db, user_id)


async def create_order_within_limit(
    db: Database,
    outbox: Outbox,
    *,
    ticket: dict[str, Any],
    user_id: str,
    expires_at: datetime,
    limit: int,
) -> dict[str, Any]:
    """Create the order in a free slot of the buyer's `limit`; 400 when all are held.

    Simultaneous requests from one buyer may read the same free slot; the unique index lets one
    of them have it and the others look again, so the limit holds however the requests interleave.
    Each lost race means another of the buyer's orders took a slot, so `limit` + 1 looks suffice
    unless the buyer is also freeing slots at that moment; then the answer is the same 400.
    """
    for _ in range(limit + 1):
        taken = await repository.taken_slots(db, user_id=user_id)
        free = [slot for slot in range(limit) if slot not in taken]
        # A lowered limit leaves slots above it in use: count them too.
        if not free or len(taken) >= limit:
            break
        try:
            return await repository.create_order(
                db, outbox, ticket=ticket, user_id=user_id, expires_at=expires_at, slot=free[0]
            )
        except repository.SlotTaken:
            continue
    raise Invalid(too_many_unpaid(limit))
