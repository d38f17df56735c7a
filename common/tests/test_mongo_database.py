"""What only a real MongoDB shows, asserted on whichever store the suite runs on (MONGO_URL or
the embedded one): each test's own database, and TTL indexes removing what has expired."""

from datetime import timedelta
from typing import Any

from common.failures import FAILURES_COLLECTION, FailureLedger
from common.rate_limit import RATE_LIMITS, create_rate_limit_indexes
from common.types import utc_now
from gittix_testing import wait_until
from gittix_testing.databases import NAME_PREFIX, own_database
from pymongo.errors import OperationFailure

# MongoDB's TTL monitor wakes every 60 s by default; the test asks for every second where the
# server lets it (a managed service may not), so the deadline covers one default sweep too.
TTL_DEADLINE_SECONDS = 90.0


async def index_options(collection: Any) -> list[dict[str, Any]]:
    """Each index the database holds: its key (as a dict) and options, as the server reports."""
    found = []
    for spec in (await collection.index_information()).values():
        options = {key: value for key, value in spec.items() if key not in ("v", "ns", "key")}
        found.append({"key": dict(spec["key"]), **options})
    return found


async def test_a_test_database_is_its_own_and_is_dropped_afterwards(
    mongo_url: str | None,
) -> None:
    async with own_database(mongo_url) as first, own_database(mongo_url) as second:
        await first["things"].insert_one({"_id": 1, "owner": "first"})
        # Nothing written in one test's database is seen from another's.
        assert await second["things"].find_one({"_id": 1}) is None
        if mongo_url is None:
            return
        assert first.name != second.name
        assert first.name.startswith(NAME_PREFIX)
        assert first.name in await first.client.list_database_names()
    async with own_database(mongo_url) as later:
        # Dropped on the way out: the server no longer lists it.
        assert first.name not in await later.client.list_database_names()


async def speed_up_ttl_monitor(db: Any, mongo_url: str | None) -> None:
    if mongo_url is None:
        return  # the embedded store drops expired documents as it reads
    try:
        await db.client.admin.command({"setParameter": 1, "ttlMonitorSleepSecs": 1})
    except OperationFailure:
        pass  # not allowed on this server (a managed service): its default sweep it is


async def test_a_rate_limit_window_that_ended_is_removed_by_its_ttl_index(
    database: Any, mongo_url: str | None
) -> None:
    await create_rate_limit_indexes(database)
    indexes = await index_options(database[RATE_LIMITS])
    assert {"key": {"resets_at": 1}, "expireAfterSeconds": 0} in indexes
    await speed_up_ttl_monitor(database, mongo_url)
    now = utc_now()
    await database[RATE_LIMITS].insert_many(
        [
            {"_id": "order:ended", "hits": 3, "resets_at": now - timedelta(seconds=5)},
            {"_id": "order:running", "hits": 1, "resets_at": now + timedelta(hours=1)},
        ]
    )

    async def ended_window_removed() -> bool:
        return await database[RATE_LIMITS].find_one({"_id": "order:ended"}) is None

    await wait_until(
        ended_window_removed,
        timeout=TTL_DEADLINE_SECONDS,
        interval=0.25,
        message="the TTL index never removed a window that had ended",
    )
    assert await database[RATE_LIMITS].find_one({"_id": "order:running"}) is not None


async def test_a_leftover_failure_record_expires_after_its_retention(
    database: Any, mongo_url: str | None
) -> None:
    ledger = FailureLedger(database[FAILURES_COLLECTION])
    await ledger.create_indexes()
    indexes = await index_options(database[FAILURES_COLLECTION])
    ttl = [spec for spec in indexes if spec["key"] == {"last_failed_at": 1}]
    assert [spec.get("expireAfterSeconds") for spec in ttl] == [30 * 24 * 3600]
    await speed_up_ttl_monitor(database, mongo_url)
    now = utc_now()
    await database[FAILURES_COLLECTION].insert_many(
        [
            {"_id": "old", "count": 1, "last_failed_at": now - timedelta(days=31)},
            {"_id": "recent", "count": 1, "last_failed_at": now - timedelta(days=29)},
        ]
    )

    async def old_removed() -> bool:
        return await database[FAILURES_COLLECTION].find_one({"_id": "old"}) is None

    await wait_until(
        old_removed, timeout=TTL_DEADLINE_SECONDS, interval=0.25, message="'old' never expired"
    )
    assert await database[FAILURES_COLLECTION].find_one({"_id": "recent"}) is not None
