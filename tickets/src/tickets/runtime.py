"""tickets' runtime: what its routes and listeners are given, with its own settings typed."""

from typing import Annotated

from common.service import ServiceRuntime, get_runtime
from fastapi import Depends

from tickets.settings import Settings


class TicketsRuntime(ServiceRuntime[Settings]):
    """tickets holds nothing beyond what every service holds."""


RuntimeDep = Annotated[TicketsRuntime, Depends(get_runtime)]
