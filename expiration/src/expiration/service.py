"""expiration's rules: which orders get a timer, what stops one, and firing each due timer
exactly once with its OrderExpired. Listeners and the scheduler call these."""

import asyncio
import logging
from dataclasses import dataclass
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

# The most pending timers one read returns (and whose claims go out together). A pass starts
# with FIRST_READ and doubles while every timer read is due, so a pass that finds one or two due
# reads a few, and a burst is read in a handful of rounds.
CLAIM_BATCH = 1000
FIRST_READ = 16


@dataclass(frozen=True)
class ExpiryPass:
    """What one pass over the due timers did, and when to look again."""

    fired: int  # timers this replica fired (another replica may win some)
    next_due: datetime | None  # when the earliest timer still pending falls due; None: none


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


async def fire_due_expirations(
    db: Database, outbox: Outbox, *, batch: int = CLAIM_BATCH
) -> ExpiryPass:
    """Fire every timer due now, each with OrderExpired in the same write.

    Each claim is its own single-document write (exactly one replica wins a timer, and its
    OrderExpired is in the outbox with it); the claims of a round go out together, and the
    relay publishes them with many acks in flight. Never early: a timer is claimed only once
    its due time has passed by the clock read after the read.
    """
    fired = 0
    read = min(FIRST_READ, batch)
    while True:
        timers = await repository.earliest_pending(db, limit=read)
        now = utc_now()
        due = []
        for timer in timers:  # the earliest first: the due ones lead
            if timer["due_at"] > now:
                break
            due.append(timer)
        results = await asyncio.gather(*(_fire(db, outbox, timer) for timer in due))
        fired += sum(results)
        if len(due) < read:  # a timer not due yet, or none left
            later = timers[len(due)]["due_at"] if len(due) < len(timers) else None
            return ExpiryPass(fired=fired, next_due=later)
        read = min(read * 2, batch)
        # The embedded store never suspends a coroutine: without this the relay would start
        # publishing only after the last claim of the burst.
        await asyncio.sleep(0)


async def _fire(db: Database, outbox: Outbox, timer: TimerDocument) -> bool:
    event = OrderExpired(order_id=timer["_id"])
    with (
        log_context(order_id=timer["_id"]),
        telemetry.span("expire order", parent=timer.get("trace")),
    ):
        if not await repository.fire(db, outbox, order_id=timer["_id"], event=event):
            return False  # another replica fired it (or it was dropped) since it was read
        lateness = (utc_now() - timer["due_at"]).total_seconds()
        EXPIRY_LATENESS.observe(max(lateness, 0.0))
        log.info("order %s expired (due %s)", timer["_id"], timer["due_at"].isoformat())
        return True


async def refresh_metrics(runtime: ExpirationRuntime) -> None:
    """The pending-timers gauge, read at each scrape of /metrics."""
    EXPIRY_PENDING_TIMERS.set(await repository.count_pending(runtime.db))
