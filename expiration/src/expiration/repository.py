"""expiration's storage: one due-time document per order, claimed atomically when it falls due.

A timer is `{_id: orderId, due_at, state}` with state `pending` (waiting), `fired` (OrderExpired
is in its outbox or published) or `dropped` (the order was cancelled or completed first). A
dropped or fired document stays as a tombstone for TOMBSTONE_RETENTION (its `ended_at` has a TTL
index), so a late or repeated OrderCreated cannot bring the timer back; after that, one arriving
would only expire an order that has ended, which orders ignores.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from common.events import Event
from common.mongo import Database
from common.outbox import Outbox
from common.snapshot import Snapshot, read_collection
from common.telemetry import TRACE_FIELD
from common.types import ceil_to_millisecond, utc_now
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from expiration.models import DropReason, TimerDocument, TimerState

EXPIRATIONS = "expirations"

PENDING: TimerState = "pending"
FIRED: TimerState = "fired"
DROPPED: TimerState = "dropped"


# Far longer than a redelivered OrderCreated can be late (the consumers' ack_wait and retries).
TOMBSTONE_RETENTION = timedelta(days=1)


async def create_indexes(db: Database) -> None:
    await db[EXPIRATIONS].create_index([("state", ASCENDING), ("due_at", ASCENDING)])
    # Fired and dropped timers go after the retention (the embedded store honours TTL too).
    await db[EXPIRATIONS].create_index(
        "ended_at", expireAfterSeconds=int(TOMBSTONE_RETENTION.total_seconds())
    )


async def schedule(
    db: Database, *, order_id: str, due_at: datetime, trace: Mapping[str, str] | None = None
) -> bool:
    """Arrange an expiry; idempotent. False when the order already has a timer or a tombstone.

    The due time is kept rounded up to the millisecond: storage would cut a finer one down, and
    the timer would fire up to a millisecond before the order's expiresAt. `trace` is the trace
    context that armed it (common.telemetry), which its firing continues.
    """
    due_at = ceil_to_millisecond(due_at)
    timer: dict[str, Any] = {"due_at": due_at, "state": PENDING, "created_at": utc_now()}
    if trace:
        timer[TRACE_FIELD] = dict(trace)
    try:
        result = await db[EXPIRATIONS].update_one(
            {"_id": order_id}, {"$setOnInsert": timer}, upsert=True
        )
    except DuplicateKeyError:  # two replicas upserted the same order at once: one won
        return False
    return result.upserted_id is not None


async def drop(db: Database, *, order_id: str, reason: DropReason) -> None:
    """Drop an order's timer, or leave a tombstone if it has none yet; a fired timer stays."""
    try:
        await db[EXPIRATIONS].update_one(
            {"_id": order_id, "state": {"$ne": FIRED}},
            {"$set": {"state": DROPPED, "dropped_because": reason, "ended_at": utc_now()}},
            upsert=True,
        )
    except DuplicateKeyError:  # the document exists and has fired: nothing to drop
        pass


async def earliest_pending(db: Database, *, limit: int) -> list[TimerDocument]:
    """Up to `limit` pending timers, the earliest due first, whether due yet or not.

    The caller tells the due ones from the next one to wait for, so one read (an index range
    on (state, due_at), stopping after `limit`) serves both; a filter on `due_at` as well would
    make the embedded store walk every pending timer when fewer than `limit` are due.
    """
    cursor = (
        db[EXPIRATIONS]
        .find({"state": PENDING}, {"due_at": 1, TRACE_FIELD: 1})
        .sort([("due_at", ASCENDING)])
        .limit(limit)
    )
    return [cast(TimerDocument, timer) async for timer in cursor]


async def fire(db: Database, outbox: Outbox, *, order_id: str, event: Event) -> bool:
    """Move a pending timer to `fired` with `event` pending, in one single-document update, so
    exactly one replica wins each timer and a crash right after it still publishes (the relay
    finds the outbox). False when it is no longer pending (another replica fired it, or it was
    dropped)."""
    now = utc_now()
    result = await outbox.update_one(
        db[EXPIRATIONS],
        {"_id": order_id, "state": PENDING},
        {"$set": {"state": FIRED, "fired_at": now, "ended_at": now}},
        event,
    )
    return bool(result.modified_count)


async def count_pending(db: Database) -> int:
    """How many timers are armed and not yet fired or dropped."""
    return await db[EXPIRATIONS].count_documents({"state": PENDING})


async def snapshot(db: Database) -> Snapshot:
    """What `make verify` compares: each order's timer and its state."""
    fields = ("state", "due_at", "dropped_because")
    return {EXPIRATIONS: await read_collection(db, EXPIRATIONS, fields, count_outbox=True)}
