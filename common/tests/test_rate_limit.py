"""Rate limits: a budget of hits per key per window, shared by replicas through the database."""

from datetime import datetime, timedelta
from typing import Any

import pytest
from common.domain_errors import RateLimited
from common.rate_limit import RateLimit, create_rate_limit_indexes
from common.types import utc_now


@pytest.fixture
async def db(database: Any) -> Any:
    await create_rate_limit_indexes(database)
    return database


@pytest.fixture
def start() -> datetime:
    # The real time, not a fixed date: the TTL index (honoured by mongomock too) drops windows
    # that ended in the past. Whole seconds, since MongoDB keeps milliseconds only.
    return utc_now().replace(microsecond=0)


def limit(**overrides: Any) -> RateLimit:
    settings: dict[str, Any] = {"limit": 3, "window_seconds": 60, "message": "Slow down"}
    return RateLimit("order", **{**settings, **overrides})


async def test_hits_within_the_budget_pass_and_the_next_is_429_with_retry_after(
    db: Any, start: datetime
) -> None:
    orders = limit()
    for second in range(3):
        await orders.hit(db, "alice", now=start + timedelta(seconds=second))

    with pytest.raises(RateLimited) as refused:
        await orders.hit(db, "alice", now=start + timedelta(seconds=10, milliseconds=500))

    assert refused.value.message == "Slow down"
    # The window began with the first hit: 49.5 s of it remain, rounded up.
    assert refused.value.retry_after_seconds == 50


async def test_the_budget_comes_back_when_the_window_ends(db: Any, start: datetime) -> None:
    orders = limit()
    for _ in range(3):
        await orders.hit(db, "alice", now=start)
    with pytest.raises(RateLimited):
        await orders.hit(db, "alice", now=start + timedelta(seconds=59, milliseconds=999))

    for _ in range(3):
        await orders.hit(db, "alice", now=start + timedelta(seconds=60))
    with pytest.raises(RateLimited) as refused:
        await orders.hit(db, "alice", now=start + timedelta(seconds=61))
    assert refused.value.retry_after_seconds == 59


async def test_refused_hits_do_not_stretch_the_window(db: Any, start: datetime) -> None:
    orders = limit(limit=1)
    await orders.hit(db, "alice", now=start)
    for second in (10, 20, 59):
        with pytest.raises(RateLimited):
            await orders.hit(db, "alice", now=start + timedelta(seconds=second))

    await orders.hit(db, "alice", now=start + timedelta(seconds=60))


async def test_each_key_and_each_action_has_its_own_budget(db: Any, start: datetime) -> None:
    orders, signups = limit(limit=1), RateLimit("signup", limit=1, window_seconds=60, message="x")
    await orders.hit(db, "alice", now=start)
    await orders.hit(db, "bob", now=start)
    await signups.hit(db, "alice", now=start)

    with pytest.raises(RateLimited):
        await orders.hit(db, "alice", now=start)
