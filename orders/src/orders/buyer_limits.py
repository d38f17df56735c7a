"""The rules that keep one buyer from hoarding tickets: not their own, not too many, not too fast.

Each rule is a function on its own; orders.service.place_order applies them before (or, for the
limit on unpaid orders, while) it creates the order.
"""

from common.domain_errors import Invalid
from common.mongo import Database
from common.rate_limit import RateLimit

from orders.models import TicketReplica
from orders.settings import Settings

OWN_TICKET = "You cannot order your own ticket"


def too_many_unpaid(limit: int) -> str:
    return (
        f"You already hold {limit} orders waiting for payment. "
        "Pay for or cancel one before reserving another ticket."
    )


def refuse_own_ticket(ticket: TicketReplica, *, user_id: str) -> None:
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


def free_slot(taken: set[int], *, limit: int) -> int | None:
    """The lowest of the buyer's `limit` slots their unpaid orders do not hold; None when they
    hold `limit` or more (a lowered limit leaves slots above it in use: they count too)."""
    if len(taken) >= limit:
        return None
    # The first gap: at most len(taken) + 1 looks, however high the limit is set.
    return next((slot for slot in range(limit) if slot not in taken), None)
