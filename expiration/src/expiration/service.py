"""expiration's rules: which orders get a timer, what stops one, and firing each due timer
exactly once with its OrderExpired. Listeners and the scheduler call these."""

import asyncio
import logging
from datetime import datetime

from common.events import OrderExpired, OrderStatus
from common.logging import log_context
from common.metrics import EXPIRY_LATENESS, EXPIRY_PENDING_TIMERS
from common.mongo import Database
from common.outbox import Outbox
from common.types import utc_now

from common import telemetry
from expiration import repository
from expiration.models import DropReason, TimerDocument
from expiration.runtime import ExpirationRuntime

log = logging.getLogger("expiration.service")

# Due timers claimed together: one read, then their single-document claims.
CLAIM_BATCH = 1000


async def schedule_expiry(
    runtime: ExpirationRuntime, *, order_id: str, status: OrderStatus, expires_at: datetime
) -> bool:
    """Arrange OrderExpired at the order's expiresAt; True when a new timer was added.

    Only a fresh lock expires; an order with a timer or a tombstone already is left as it is.
    """
    if status != "created":
        return False
    # The timer keeps the trace of the OrderCreated that armed it: its OrderExpired continues
    # the purchase's trace (docs/architecture.md, "Traces").
    armed = await repository.schedule(
        runtime.db, order_id=order_id, due_at=expires_at, trace=telemetry.current_carrier()
    )
    if not armed:
        return False
    # The new timer may be due before the one the scheduler is sleeping towards.
    sleeps_until = runtime.scheduler_sleeps_until
    if sleeps_until is None or expires_at < sleeps_until:
        runtime.scheduler_wake.set()
    return True


async def drop_expiry(db: Database, *, order_id: str, reason: DropReason) -> None:
    """The order ended before its lock ran out: it never expires, even if its OrderCreated is
    still to come. A timer that already fired stays fired (orders ignores the expiry of a
    completed order)."""
    await repository.drop(db, order_id=order_id, reason=reason)


async def order_status_changed(db: Database, *, order_id: str, status: OrderStatus) -> None:
    """A completed order never expires; other status changes leave the timer as it is."""
    if status == "completed":
        await drop_expiry(db, order_id=order_id, reason="completed")


async def fire_due_expirations(db: Database, outbox: Outbox, *, batch: int = CLAIM_BATCH) -> int:
    """Fire every timer due now, each with OrderExpired in the same write; returns how many this
    replica fired (another replica may win some of them).

    Due timers are read `batch` at a time and claimed together; each claim is still its own
    single-document write, and the relay publishes the batch with many acks in flight.
    """
    fired = 0
    while True:
        due = await repository.due_timers(db, now=utc_now(), limit=batch)
        results = await asyncio.gather(*(_fire(db, outbox, timer) for timer in due))
        fired += sum(results)
        if len(due) < batch:
            return fired


async def _fire(db: Database, outbox: Outbox, timer: TimerDocument) -> bool:
    event = OrderExpired(order_id=timer["_id"])
    with (
        log_context(order_id=timer["_id"]),
        telemetry.span("expire order", parent=timer.get("trace")),
    ):
        if await repository.fire(db, outbox, order_id=timer["_id"], event=event) is None:
            return False  # another replica fired it (or it was dropped) since it was read
        lateness = (utc_now() - timer["due_at"]).total_seconds()
        EXPIRY_LATENESS.observe(max(lateness, 0.0))
        log.info("order %s expired (due %s)", timer["_id"], timer["due_at"].isoformat())
        return True


async def refresh_metrics(runtime: ExpirationRuntime) -> None:
    """The pending-timers gauge, read at each scrape of /metrics."""
    EXPIRY_PENDING_TIMERS.set(await repository.count_pending(runtime.db))


async def next_due_at(db: Database) -> datetime | None:
    """When the earliest pending timer falls due; None when none is pending."""
    return await repository.next_due_at(db)
