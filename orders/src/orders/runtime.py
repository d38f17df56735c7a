"""orders' runtime: what its routes and listeners are given, with its own settings typed."""

from typing import Annotated

from common.service import ServiceRuntime, get_runtime
from fastapi import Depends

from orders.settings import Settings


class OrdersRuntime(ServiceRuntime[Settings]):
    """orders holds nothing beyond what every service holds."""


RuntimeDep = Annotated[OrdersRuntime, Depends(get_runtime)]
