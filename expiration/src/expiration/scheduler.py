"""The expiry scheduler: sleeps until the earliest timer is due, then claims and fires it."""

import asyncio
import logging

from common.events import OrderExpired
from common.types import utc_now

from expiration import repository
from expiration.runtime import ExpirationRuntime

log = logging.getLogger("expiration.scheduler")


async def fire_due_expirations(runtime: ExpirationRuntime) -> int:
    """Claim and fire every timer due now; returns how many this replica fired."""
    fired = 0
    while True:
        claimed = await repository.claim_due(
            runtime.db,
            runtime.outbox,
            now=utc_now(),
            event_for=lambda order_id: OrderExpired(order_id=order_id),
        )
        if claimed is None:
            return fired
        fired += 1
        log.info("order %s expired (due %s)", claimed["_id"], claimed["due_at"].isoformat())


async def run_scheduler(runtime: ExpirationRuntime) -> None:
    """Background task: fire due timers, then sleep until the next is due or a timer is added.

    Sleeps are capped at EXPIRATION_POLL_SECONDS so timers written by another replica (whose
    wake-up this replica never hears) are still fired on time.
    """
    wake = runtime.scheduler_wake
    cap = runtime.settings.expiration_poll_seconds
    while True:
        wake.clear()
        try:
            await fire_due_expirations(runtime)
            next_due = await repository.next_due_at(runtime.db)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("firing due expirations failed; trying again shortly")
            next_due = None
        delay = cap
        if next_due is not None:
            delay = min(cap, max((next_due - utc_now()).total_seconds(), 0.0))
        try:
            async with asyncio.timeout(delay):
                await wake.wait()
        except TimeoutError:
            pass
