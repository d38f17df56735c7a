"""orders' settings: the common ones, how long an order holds its ticket, and buyers' limits."""

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
    # ORDERS_MAX_ACTIVE_PER_USER: orders one buyer may hold unpaid at once (created or awaiting
    # payment); past it, reserving is 400 until one is paid, cancelled or expires.
    orders_max_active_per_user: int = Field(default=5, gt=0)
    # ORDERS_RATE_LIMIT per ORDERS_RATE_WINDOW_SECONDS: reserve attempts per user (429 past it).
    orders_rate_limit: int = Field(default=10, gt=0)
    orders_rate_window_seconds: int = Field(default=60, gt=0)
