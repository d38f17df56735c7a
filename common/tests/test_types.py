"""Shared field types: deadlines rounded up to the millisecond that storage and events keep."""

from datetime import UTC, datetime

import pytest
from common.types import ceil_to_millisecond, format_utc


@pytest.mark.parametrize(
    ("moment", "rounded"),
    [
        (
            datetime(2026, 11, 26, 16, 0, 0, 822000, UTC),
            datetime(2026, 11, 26, 16, 0, 0, 822000, UTC),
        ),
        (
            datetime(2026, 11, 26, 16, 0, 0, 822001, UTC),
            datetime(2026, 11, 26, 16, 0, 0, 823000, UTC),
        ),
        (
            datetime(2026, 11, 26, 16, 0, 0, 822947, UTC),
            datetime(2026, 11, 26, 16, 0, 0, 823000, UTC),
        ),
        # Carries into the next second, minute, hour and day.
        (datetime(2026, 12, 31, 23, 59, 59, 999500, UTC), datetime(2027, 1, 1, 0, 0, 0, 0, UTC)),
    ],
)
def test_a_moment_is_rounded_up_to_a_whole_millisecond(moment: datetime, rounded: datetime) -> None:
    assert ceil_to_millisecond(moment) == rounded


def test_a_rounded_moment_is_written_as_exactly_itself() -> None:
    moment = ceil_to_millisecond(datetime(2026, 11, 26, 16, 0, 0, 822947, UTC))

    assert format_utc(moment) == "2026-11-26T16:00:00.823Z"
    assert datetime.fromisoformat(format_utc(moment)) == moment
