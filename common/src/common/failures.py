"""Counts a message's real handler errors, apart from its deliveries, in the service's database.

JetStream counts every delivery, and a message waiting for its predecessor (RetryLater) is
delivered again and again without anything being wrong, so its delivery count cannot decide
when to give up. The ledger holds one small document per (consumer, stream sequence) that has
failed at least once: shared by every replica of the service, kept across restarts, removed when
the message is finally acknowledged or dead-lettered. The happy path never touches it.
"""

from datetime import UTC, datetime, timedelta

from pymongo import ReturnDocument

from common.mongo import Collection

FAILURES_COLLECTION = "listener_failures"
# A document left behind (its removal failed) is swept after this; no message that old is still
# being retried, as the stream itself keeps messages for less (STREAM_MAX_AGE_SECONDS).
LEFTOVER_RETENTION = timedelta(days=30)


class FailureLedger:
    """`record` counts one more error for a message and returns its total; `clear` forgets it."""

    def __init__(self, collection: Collection) -> None:
        self._collection = collection

    async def create_indexes(self) -> None:
        await self._collection.create_index(
            "last_failed_at", expireAfterSeconds=int(LEFTOVER_RETENTION.total_seconds())
        )

    @staticmethod
    def _key(consumer: str, stream: str, sequence: int) -> str:
        return f"{consumer}:{stream}:{sequence}"

    async def record(self, *, consumer: str, stream: str, sequence: int, error: str) -> int:
        now = datetime.now(UTC)
        document = await self._collection.find_one_and_update(
            {"_id": self._key(consumer, stream, sequence)},
            {
                "$inc": {"failures": 1},
                "$set": {"last_error": error[:2000], "last_failed_at": now},
                "$setOnInsert": {
                    "consumer": consumer,
                    "sequence": sequence,
                    "first_failed_at": now,
                },
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert document is not None  # upserted
        return int(document["failures"])

    async def count(self, *, consumer: str, stream: str, sequence: int) -> int:
        document = await self._collection.find_one({"_id": self._key(consumer, stream, sequence)})
        return int(document["failures"]) if document else 0

    async def clear(self, *, consumer: str, stream: str, sequence: int) -> None:
        await self._collection.delete_one({"_id": self._key(consumer, stream, sequence)})
