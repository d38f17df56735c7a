"""The expiry scheduler: a background loop that sleeps until the earliest timer is due, then
has the service layer fire what is due."""

import asyncio
import logging
from datetime import timedelta

from common.types import utc_now

from expiration import service
from expiration.runtime import ExpirationRuntime

log = logging.getLogger("expiration.scheduler")

# How soon a pass that failed (a database error, a publish refused) is tried again.
RETRY_SECONDS = 1.0


async def run_scheduler(runtime: ExpirationRuntime) -> None:
    """Background task: fire due timers, then sleep until the next is due or a timer is added.

    Sleeps are capped at EXPIRATION_POLL_SECONDS so timers written by another replica (whose
    wake-up this replica never hears) are still fired on time. The embedded store lives in this
    process, so no other replica writes to it: there the scheduler sleeps until the next due
    time or a wake-up, without re-reading every pending timer at each poll.
    """
    wake = runtime.scheduler_wake
    cap = runtime.settings.expiration_poll_seconds if runtime.settings.mongo_url else None
    while True:
        wake.clear()
        runtime.scheduler_sleeps_until = None
        try:
            next_due = (await service.fire_due_expirations(runtime.db, runtime.outbox)).next_due
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("firing due expirations failed; trying again shortly")
            # Without a cap (the embedded store) nothing else would wake the scheduler for the
            # timers that are still due.
            next_due = utc_now() + timedelta(seconds=RETRY_SECONDS)
        delay = cap
        if next_due is not None:
            until_due = max((next_due - utc_now()).total_seconds(), 0.0)
            delay = until_due if cap is None else min(cap, until_due)
            runtime.scheduler_sleeps_until = next_due
        try:
            async with asyncio.timeout(delay):
                await wake.wait()
        except TimeoutError:
            pass
