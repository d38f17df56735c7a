"""Field types shared by events and HTTP bodies: money, UTC timestamps, camelCase models."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel


def _number_only(value: Any) -> Any:
    # JSON strings and booleans are not prices, even where pydantic would coerce them; numbers go
    # through their shortest decimal text so 19.99 stays exactly 19.99.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a number")
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def format_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z` offset: 2026-11-26T16:00:00.123Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> datetime:
    return datetime.now(UTC)


def ceil_to_millisecond(moment: datetime) -> datetime:
    """The moment rounded up to a whole millisecond.

    MongoDB and event JSON keep milliseconds and cut the rest off; a deadline already on a whole
    millisecond is stored, shown and sent unchanged, so nothing acting on it can be early.
    """
    below = moment.microsecond % 1000
    return moment if below == 0 else moment + timedelta(microseconds=1000 - below)


Price = Annotated[
    Decimal,
    BeforeValidator(_number_only),
    Field(gt=0, max_digits=11, decimal_places=2),
    PlainSerializer(float, return_type=float, when_used="json"),
    # What the API really takes and gives: a number (pydantic would document Decimal's "number
    # or string" and its own gt/max_digits keys, which are no JSON Schema; found by fuzzing).
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": 999_999_999.99}),
]
"""A price: a JSON number greater than 0 with at most two decimals, kept exact as Decimal."""

UtcDateTime = Annotated[
    AwareDatetime,
    PlainSerializer(format_utc, return_type=str, when_used="json"),
]
"""A timezone-aware moment, written as ISO 8601 UTC with an explicit `Z`."""


def price_to_cents(price: Decimal) -> int:
    return int((price * 100).to_integral_exact())


def cents_to_price(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


class CamelModel(BaseModel):
    """Snake_case in Python, camelCase on the wire; unknown fields are rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
    )
