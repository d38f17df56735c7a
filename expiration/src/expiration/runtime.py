"""expiration's runtime: what its listeners and scheduler are given, with its settings typed."""

import asyncio
from dataclasses import dataclass, field

from common.service import ServiceRuntime

from expiration.settings import Settings


@dataclass
class ExpirationRuntime(ServiceRuntime[Settings]):
    # Set by a listener that adds a timer which may fall due before the one being slept towards.
    scheduler_wake: asyncio.Event = field(default_factory=asyncio.Event)
