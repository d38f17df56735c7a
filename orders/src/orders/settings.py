"""orders' settings: the common ones plus how long an order holds its ticket."""

from typing import ClassVar

from common.settings import ServiceSettings
from pydantic import Field


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "orders"
    deployment_env: ClassVar[tuple[str, ...]] = (
        *ServiceSettings.deployment_env,
        "ORDER_EXPIRATION_SECONDS",
    )

    # ORDER_EXPIRATION_SECONDS: how long a new order locks its ticket while the buyer pays.
    order_expiration_seconds: int = Field(default=900, gt=0)
