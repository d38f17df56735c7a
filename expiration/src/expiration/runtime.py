"""expiration's runtime: what its listeners and scheduler are given, with its settings typed."""

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from common.service import ServiceRuntime

from expiration.settings import Settings


@dataclass
class ExpirationRuntime(ServiceRuntime[Settings]):
    # Set by a listener that adds a timer which may fall due before the one being slept towards.
    scheduler_wake: asyncio.Event = field(default_factory=asyncio.Event)
    # The due time the scheduler sleeps towards (None: no timer pending, or it is awake): a new
    # timer due later needs no wake-up, so arming many timers does not re-read them all.
    scheduler_sleeps_until: datetime | None = None
