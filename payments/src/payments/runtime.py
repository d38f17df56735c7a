"""payments' runtime: what its routes, listeners and sweeper are given, settings typed."""

from dataclasses import dataclass, field
from typing import Annotated

from common.service import ServiceRuntime, get_runtime
from fastapi import Depends

from payments.settings import Settings
from payments.stripe_gateway import StripeGateway


@dataclass
class PaymentsRuntime(ServiceRuntime[Settings]):
    # Created by the app's setup, before any listener, request or sweep can use it.
    gateway: StripeGateway = field(init=False)


RuntimeDep = Annotated[PaymentsRuntime, Depends(get_runtime)]
