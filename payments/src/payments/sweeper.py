"""The payments sweeper: a background loop that settles what failed requests left behind."""

import asyncio
import logging

from payments import service
from payments.runtime import PaymentsRuntime

log = logging.getLogger("payments.sweeper")


async def run_sweeper(runtime: PaymentsRuntime) -> None:
    """Sweep every PAYMENTS_SWEEP_SECONDS (owed refunds, unresolved attempts of cancelled
    orders); closes the Stripe client when the service stops."""
    try:
        while True:
            try:
                await service.sweep_once(runtime)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("payments sweep failed; trying again later")
            await asyncio.sleep(runtime.settings.payments_sweep_seconds)
    finally:
        await runtime.gateway.close()
