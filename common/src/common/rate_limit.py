"""Rate limits kept in the service's database, so every replica counts against the same budget.

A key (an action and who does it) gets `limit` hits per window; the window starts at the key's
first hit, so a burst can never straddle two windows of a clock-aligned scheme and get twice the
budget. Past the limit the answer is 429 with `Retry-After`: the seconds left in the window.
"""

import math
from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from common.domain_errors import RateLimited
from common.mongo import Database
from common.types import utc_now

RATE_LIMITS = "rate_limits"


async def create_rate_limit_indexes(db: Database) -> None:
    # MongoDB removes a window once it has ended (within its TTL sweep, about a minute).
    await db[RATE_LIMITS].create_index("resets_at", expireAfterSeconds=0)


class RateLimit:
    """At most `limit` hits of `action` per key every `window_seconds`."""

    def __init__(self, action: str, *, limit: int, window_seconds: int, message: str) -> None:
        self.action = action
        self.limit = limit
        self.window = timedelta(seconds=window_seconds)
        self.message = message

    async def hit(self, db: Database, key: str, *, now: datetime | None = None) -> None:
        """Count one hit for `key`; RateLimited when the window's budget is spent."""
        now = now or utc_now()
        document_id = f"{self.action}:{key}"
        windows = db[RATE_LIMITS]
        while True:
            current = await windows.find_one_and_update(
                {"_id": document_id, "resets_at": {"$gt": now}},
                {"$inc": {"hits": 1}},
                return_document=ReturnDocument.AFTER,
            )
            if current is not None:
                if current["hits"] > self.limit:
                    raise RateLimited(
                        self.message, retry_after_seconds=_seconds_until(current["resets_at"], now)
                    )
                return
            try:
                # No live window: start one, replacing an ended one. When another request starts
                # it first, the upsert collides on _id and the loop counts this hit in theirs.
                await windows.update_one(
                    {"_id": document_id, "resets_at": {"$lte": now}},
                    {"$set": {"hits": 1, "resets_at": now + self.window}},
                    upsert=True,
                )
            except DuplicateKeyError:
                continue
            return


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))
