"""payments' request and response bodies."""

from common.types import CamelModel
from pydantic import BaseModel, ConfigDict, Field


class PaymentBody(CamelModel):
    order_id: str = Field(min_length=1)
    # A Stripe PaymentMethod id, e.g. pm_card_visa in test mode.
    token: str = Field(min_length=1, max_length=255)


class ChargeOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
